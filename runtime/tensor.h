// Tensor: a shape, a dtype, a device and shared storage. Contiguous row-major views only;
// copies between devices are always explicit (runtime/device/device_memory.h). Host accessors
// (data, f32, i32, fill, copy_from) refuse a device tensor with one line; device code takes its
// address with device_data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace tessera {

enum class DType { F32, BF16, F16, I32, U16 };
size_t dtype_size(DType dtype);
std::string dtype_name(DType dtype);  // safetensors names: F32, BF16, F16, I32, U16

enum class DeviceKind { CPU, CUDA };
struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;
  static Device cpu() { return {}; }
  static Device cuda(int index) { return {DeviceKind::CUDA, index}; }
  bool is_cpu() const { return kind == DeviceKind::CPU; }
  bool operator==(const Device&) const = default;
};
std::string device_name(Device device);  // "cpu", "cuda:0"

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);

// Bytes of tensor storage currently allocated and the peak since start, per device kind.
struct MemoryStats {
  int64_t current_bytes = 0;
  int64_t peak_bytes = 0;
};
MemoryStats host_memory_stats();
// Starts a new peak from what is allocated now (a trainer after its set-up and its start-up
// GEMM roof, so that the steps' peak is reported apart from the set-up's).
void reset_host_memory_peak();

class DeviceMemory;

// Owns one allocation: host memory, or device memory from the device's DeviceMemory. Freed when the last Tensor that shares it goes away.
class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  std::shared_ptr<DeviceMemory> device_memory_;  // null for host storage
};

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int axis) const;
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // The elements, for host code: a tensor on a device throws (its bytes are not addressable
  // here; copy it with to_device first).
  template <typename T>
  T* data() const {
    TESSERA_CHECK(device_.is_cpu(), "host access to a tensor on {} ({} {}): copy it to the host first",
                  device_name(device_), dtype_name(dtype_), shape_string(shape_));
    return address<T>();
  }
  // The device address of the elements, for kernels of the tensor's device: a host tensor throws,
  // so a host pointer never reaches a device kernel.
  template <typename T>
  T* device_data() const {
    TESSERA_CHECK(!device_.is_cpu(), "a device kernel was given a host tensor ({} {})", dtype_name(dtype_),
                  shape_string(shape_));
    return address<T>();
  }
  float* f32() const;
  int32_t* i32() const;

  // Same storage, new shape with the same element count.
  Tensor view(const Shape& shape) const;
  // Rows [start, start + length) along axis 0, sharing storage.
  Tensor narrow(int64_t start, int64_t length) const;
  // A deep copy on the same device.
  Tensor clone() const;
  void copy_from(const Tensor& src);
  // Zeros the elements on whatever device holds them (on a device: ordered on its compute stream).
  void zero();
  void fill(float value);

 private:
  template <typename T>
  T* address() const {
    TESSERA_CHECK(defined(), "tensor is undefined");
    return reinterpret_cast<T*>(static_cast<char*>(storage_->data()) + offset_ * dtype_size(dtype_));
  }

  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_;
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in elements
};

}  // namespace tessera
