// Device memory behind Tensor storage: the interface a device runtime (the CUDA one, in
// runtime/cuda/) implements, and the explicit copies between host and device. The core tensor
// knows no CUDA: a Storage on a CUDA device asks the resource registered for that device, and a
// build without CUDA has none, so it refuses with one line. Storage is made deep inside ops
// (Tensor::empty) where no context is passed, which is why the resource is looked up by device
// rather than handed down (PyTorch's allocator registry is the same shape).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  virtual Device device() const = 0;
  // Device bytes for a tensor; freed with deallocate. Both are ordered on the device's compute
  // stream, so a block freed there can be handed out again without a synchronisation.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr) = 0;
  // dst <- src, where either or both may be on this device. A copy to the host returns when the
  // bytes have arrived; copies onto the device are ordered on the compute stream.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) = 0;
  virtual void set_zero(void* ptr, size_t bytes) = 0;
  // Host reads batched into one synchronisation: every copy device -> host is enqueued, then the
  // host waits once (the trainer's loss, grad norm and non-finite flags of a step).
  struct HostRead {
    void* host_dst;
    const void* device_src;
    size_t bytes;
  };
  virtual void read_to_host(const std::vector<HostRead>& reads) = 0;
  // Times the host has waited for this device (copies to the host, read_to_host, synchronize).
  virtual int64_t host_waits() const = 0;
  // Waits for all work queued on the device's compute stream.
  virtual void synchronize() = 0;
  virtual MemoryStats stats() const = 0;
  // Starts a new peak from what is allocated now (as reset_host_memory_peak).
  virtual void reset_peak() = 0;
};

// Makes `memory` the resource of its device (replacing any earlier one); nullptr for a device
// removes it. Tensors allocated from a resource keep it alive until they are freed.
void register_device_memory(Device device, std::shared_ptr<DeviceMemory> memory);
// The resource of a CUDA device; throws one line when the build or the process has none.
std::shared_ptr<DeviceMemory> device_memory(Device device);
bool has_device_memory(Device device);

// The one way data crosses between devices: copies src into dst (same dtype and element count,
// any devices). No op ever moves data implicitly.
void copy_tensor(Tensor& dst, const Tensor& src);
// A copy of src on `device` (src itself when it is already there).
Tensor to_device(const Tensor& src, Device device);
// Copies each srcs[i] into the host tensor dsts[i] with one wait per device involved: the way
// to read a step's device scalars.
void read_to_host(const std::vector<Tensor>& srcs, std::vector<Tensor>& dsts);

}  // namespace tessera
