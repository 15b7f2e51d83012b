// CudaContext: one rank's CUDA state — its device, the compute stream every op of the rank is
// enqueued on, the caching allocator behind device tensors, and the cuBLASLt handle of that stream
// — and CudaEvent, the ordering between that stream and another (the NCCL stream). Built only
// with CUDA (tessera_runtime_cuda); this header needs no CUDA headers.
#pragma once

#include <memory>

#include "kernels/cuda/cublas_handle.h"
#include "kernels/cuda/device_allocator.h"
#include "kernels/cuda/stream.h"
#include "runtime/tensor.h"

struct CUevent_st;

namespace tessera {

class CudaContext {
 public:
  // Makes `device_index` the calling thread's device and creates the stream, allocator and
  // cuBLASLt handle. Throws (with CUDA's error string) when the device cannot be used.
  explicit CudaContext(int device_index, bool allow_tf32 = false);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  Device device() const { return Device::cuda(device_index_); }
  cudaStream_t stream() const { return stream_; }
  kernels::cuda::DeviceAllocator& allocator() { return *allocator_; }
  kernels::cuda::CublasHandle& cublas() { return *cublas_; }
  // Makes this context's device the calling thread's current device (CUDA's state is per thread).
  void make_current() const;

 private:
  int device_index_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<kernels::cuda::DeviceAllocator> allocator_;
  std::unique_ptr<kernels::cuda::CublasHandle> cublas_;
};

// Orders work across streams without a host wait: record() marks the point on one stream,
// make_wait() holds another stream there. Timing is disabled (cheaper events).
class CudaEvent {
 public:
  CudaEvent();
  ~CudaEvent();
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  void record(cudaStream_t stream);
  void make_wait(cudaStream_t stream) const;
  // True when the recorded work has finished (for watchdogs that must not block).
  bool done() const;

 private:
  CUevent_st* event_ = nullptr;
};

// The number of CUDA devices this process can see (0 when there is no driver or no device).
int visible_cuda_devices();
// Starts the CUDA runtime of this rank on `device_index`: a CudaContext whose allocator becomes
// the DeviceMemory of Device::cuda(device_index), so Tensor::empty can allocate there.
std::shared_ptr<CudaContext> start_cuda_device(int device_index, bool allow_tf32);

}  // namespace tessera
