// Tensor and host Storage implementation, with allocation accounting for memory reports.
#include "runtime/tensor.h"

#include "runtime/device/device_memory.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace tessera {
namespace {

std::atomic<int64_t> g_host_current{0};
std::atomic<int64_t> g_host_peak{0};

void account(int64_t delta) {
  const int64_t now = g_host_current.fetch_add(delta) + delta;
  int64_t peak = g_host_peak.load();
  while (now > peak && !g_host_peak.compare_exchange_weak(peak, now)) {
  }
}

}  // namespace

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::BF16:
    case DType::F16:
    case DType::U16:
      return 2;
  }
  return 0;
}

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::U16: return "U16";
  }
  return "?";
}

int64_t shape_numel(const Shape& shape) {
  // A zero dimension makes the tensor empty whatever the others are; otherwise the product
  // must not overflow (a malformed file header could ask for 2^62 x 4; found by tests/fuzz).
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;
  for (int64_t d : shape) {
    TESSERA_CHECK(!__builtin_mul_overflow(n, d, &n), "shape {} has more elements than fit in 64 bits",
                  fmt::format("[{}]", fmt::join(shape, ", ")));
  }
  return n;
}

std::string shape_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

MemoryStats host_memory_stats() { return {g_host_current.load(), g_host_peak.load()}; }

void reset_host_memory_peak() { g_host_peak.store(g_host_current.load()); }

std::string device_name(Device device) {
  return device.is_cpu() ? std::string("cpu") : fmt::format("cuda:{}", device.index);
}

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (!device.is_cpu()) {
    device_memory_ = device_memory(device);
    data_ = device_memory_->allocate(bytes);
    return;
  }
  // 64-byte alignment keeps Eigen's vectorised loads aligned for every row of width % 16 == 0.
  const size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  data_ = std::aligned_alloc(64, rounded);
  TESSERA_CHECK(data_ != nullptr, "out of host memory allocating {} bytes", bytes);
  account(static_cast<int64_t>(bytes_));
}

Storage::~Storage() {
  if (device_memory_ != nullptr) {
    device_memory_->deallocate(data_);
    return;
  }
  std::free(data_);
  account(-static_cast<int64_t>(bytes_));
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) TESSERA_CHECK(d >= 0, "negative dimension in shape {}", shape_string(shape));
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero();
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  t.fill(value);
  return t;
}

int64_t Tensor::dim(int axis) const {
  const int n = ndim();
  if (axis < 0) axis += n;
  TESSERA_CHECK(axis >= 0 && axis < n, "axis {} out of range for shape {}", axis, shape_string(shape_));
  return shape_[axis];
}

float* Tensor::f32() const {
  TESSERA_CHECK(dtype_ == DType::F32, "expected an F32 tensor, got {}", dtype_name(dtype_));
  return data<float>();
}

int32_t* Tensor::i32() const {
  TESSERA_CHECK(dtype_ == DType::I32, "expected an I32 tensor, got {}", dtype_name(dtype_));
  return data<int32_t>();
}

Tensor Tensor::view(const Shape& shape) const {
  TESSERA_CHECK(shape_numel(shape) == numel(), "cannot view {} as {}", shape_string(shape_),
                shape_string(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::narrow(int64_t start, int64_t length) const {
  TESSERA_CHECK(ndim() >= 1 && start >= 0 && length >= 0 && start + length <= shape_[0],
                "narrow({}, {}) out of range for shape {}", start, length, shape_string(shape_));
  Tensor t = *this;
  t.shape_[0] = length;
  t.offset_ = offset_ + start * (numel() / std::max<int64_t>(shape_[0], 1));
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device_);
  copy_tensor(t, *this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  TESSERA_CHECK(src.numel() == numel() && src.dtype_ == dtype_, "copy_from {} {} into {} {}",
                dtype_name(src.dtype_), shape_string(src.shape_), dtype_name(dtype_), shape_string(shape_));
  TESSERA_CHECK(device_.is_cpu() && src.device_.is_cpu(),
                "Tensor::copy_from is host-only ({} <- {}); use copy_tensor (runtime/device/device_memory.h)",
                device_name(device_), device_name(src.device_));
  if (nbytes() > 0) std::memcpy(data<char>(), src.data<char>(), nbytes());
}

void Tensor::zero() {
  if (nbytes() == 0) return;
  if (device_.is_cpu()) {
    std::memset(data<char>(), 0, nbytes());
  } else {
    device_memory(device_)->set_zero(device_data<char>(), nbytes());
  }
}

void Tensor::fill(float value) {
  std::fill_n(f32(), numel(), value);
}

}  // namespace tessera
