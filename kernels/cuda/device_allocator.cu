// DeviceAllocator: free lists per (stream, size class) over blocks from cudaMalloc.
#include <cuda_runtime.h>

#include <fmt/format.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_allocator.h"

namespace tessera::kernels::cuda {

DeviceAllocator::Backend DeviceAllocator::cuda_backend() {
  Backend backend;
  backend.allocate = [](size_t bytes) -> void* {
    void* ptr = nullptr;
    const cudaError_t err = cudaMalloc(&ptr, bytes);
    if (err == cudaErrorMemoryAllocation) {
      // The failure is also recorded as the last error; clear it so that the next
      // cudaGetLastError() after a kernel launch does not report it.
      (void)cudaGetLastError();
      return nullptr;
    }
    TESSERA_CUDA_CHECK(err);
    return ptr;
  };
  backend.release = [](void* ptr) { cudaFree(ptr); };
  return backend;
}

DeviceAllocator::DeviceAllocator(Backend backend) : backend_(std::move(backend)) {}

DeviceAllocator::~DeviceAllocator() {
  for (const auto& [ptr, block] : live_) backend_.release(ptr);
  for (const auto& [key, ptrs] : free_) {
    for (void* ptr : ptrs) backend_.release(ptr);
  }
}

size_t DeviceAllocator::size_class(size_t bytes) {
  constexpr size_t kMin = 512;
  if (bytes <= kMin) return kMin;
  size_t pow2 = kMin;
  while (pow2 * 2 <= bytes) pow2 *= 2;  // the largest power of two <= bytes
  if (bytes == pow2) return pow2;
  const size_t step = pow2 / 4;
  return (bytes + step - 1) / step * step;
}

void* DeviceAllocator::allocate(size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return nullptr;
  const size_t size = size_class(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* ptr = nullptr;
  auto it = free_.find({stream, size});
  if (it != free_.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= size;
  } else {
    ptr = backend_.allocate(size);
    if (ptr == nullptr && stats_.cached_bytes > 0) {
      release_cached_locked();
      ptr = backend_.allocate(size);
    }
    TESSERA_CHECK(ptr != nullptr,
                  "DeviceAllocator: out of device memory allocating {} bytes (class {}); {} bytes "
                  "in use, {} reserved, peak {}",
                  bytes, size, stats_.current_bytes, stats_.reserved_bytes, stats_.peak_bytes);
    ++stats_.backend_allocations;
    stats_.reserved_bytes += size;
  }
  live_.emplace(ptr, Block{size, stream});
  stats_.current_bytes += size;
  if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
  return ptr;
}

void DeviceAllocator::deallocate(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = live_.find(ptr);
  TESSERA_CHECK(it != live_.end(), "DeviceAllocator: {} is not a live block", ptr);
  const Block block = it->second;
  live_.erase(it);
  free_[{block.stream, block.size}].push_back(ptr);
  stats_.current_bytes -= block.size;
  stats_.cached_bytes += block.size;
}

void DeviceAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void DeviceAllocator::release_cached_locked() {
  for (auto& [key, ptrs] : free_) {
    for (void* ptr : ptrs) backend_.release(ptr);
    stats_.reserved_bytes -= key.second * ptrs.size();
  }
  free_.clear();
  stats_.cached_bytes = 0;
}

DeviceAllocator::Stats DeviceAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void DeviceAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_bytes = stats_.current_bytes;
}

}  // namespace tessera::kernels::cuda
