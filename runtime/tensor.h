// Tensor: a shape, a dtype, a device and shared storage. Contiguous row-major views only;
// copies between devices are always explicit.
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
  bool operator==(const Device&) const = default;
};

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);

// Bytes of tensor storage currently allocated and the peak since start, per device kind.
struct MemoryStats {
  int64_t current_bytes = 0;
  int64_t peak_bytes = 0;
};
MemoryStats host_memory_stats();
// Starts a new peak from what is allocated now (a trainer after its set-up, so the peak it
// reports is that of training, not of building the full model before sharding it).
void reset_host_memory_peak();

// Owns one allocation. Freed when the last Tensor that shares it goes away.
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

  template <typename T>
  T* data() const {
    TESSERA_CHECK(defined(), "tensor is undefined");
    return reinterpret_cast<T*>(static_cast<char*>(storage_->data()) +
                                offset_ * dtype_size(dtype_));
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
  void zero();
  void fill(float value);

 private:
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_;
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in elements
};

}  // namespace tessera
