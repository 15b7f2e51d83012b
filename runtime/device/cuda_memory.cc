// CudaMemory: the DeviceMemory of one CUDA device — tensor storage from the context's caching
// allocator, copies and zeroing on its compute stream, and batched host reads through a pinned
// staging buffer (a device -> pageable-host copy would wait by itself, once per scalar).
#include <cuda_runtime.h>

#include <atomic>
#include <cstring>

#include "kernels/cuda/cuda_check.h"
#include "runtime/device/cuda_context.h"
#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

cudaMemcpyKind copy_kind(Device dst, Device src) {
  if (dst.is_cpu()) return cudaMemcpyDeviceToHost;
  return src.is_cpu() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice;
}

class CudaMemory : public DeviceMemory {
 public:
  explicit CudaMemory(std::shared_ptr<CudaContext> context) : context_(std::move(context)) {}
  ~CudaMemory() override {
    if (staging_ != nullptr) cudaFreeHost(staging_);
  }

  Device device() const override { return context_->device(); }
  void* allocate(size_t bytes) override { return context_->allocator().allocate(bytes, context_->stream()); }
  void deallocate(void* ptr) override { context_->allocator().deallocate(ptr); }

  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) override {
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, copy_kind(dst_device, src_device), context_->stream()));
    if (dst_device.is_cpu()) wait();  // the caller reads the bytes next
  }

  void set_zero(void* ptr, size_t bytes) override {
    TESSERA_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, context_->stream()));
  }

  void read_to_host(const std::vector<HostRead>& reads) override {
    size_t total = 0;
    for (const HostRead& r : reads) total += (r.bytes + 7) / 8 * 8;
    reserve_staging(total);
    size_t offset = 0;
    for (const HostRead& r : reads) {
      TESSERA_CUDA_CHECK(cudaMemcpyAsync(staging_ + offset, r.device_src, r.bytes, cudaMemcpyDeviceToHost,
                                         context_->stream()));
      offset += (r.bytes + 7) / 8 * 8;
    }
    wait();
    offset = 0;
    for (const HostRead& r : reads) {
      std::memcpy(r.host_dst, staging_ + offset, r.bytes);
      offset += (r.bytes + 7) / 8 * 8;
    }
  }

  int64_t host_waits() const override { return waits_.load(); }
  void synchronize() override { wait(); }

  MemoryStats stats() const override {
    const auto s = context_->allocator().stats();
    return {static_cast<int64_t>(s.current_bytes), static_cast<int64_t>(s.peak_bytes)};
  }
  void reset_peak() override { context_->allocator().reset_peak(); }

 private:
  void wait() {
    TESSERA_CUDA_CHECK(cudaStreamSynchronize(context_->stream()));
    ++waits_;
  }

  // Pinned so the copies run asynchronously; grown (rarely: a step reads the same scalars).
  // No copy targets the old buffer here: every read_to_host waits before it returns.
  void reserve_staging(size_t bytes) {
    if (bytes <= staging_bytes_) return;
    if (staging_ != nullptr) TESSERA_CUDA_CHECK(cudaFreeHost(staging_));
    staging_ = nullptr;
    void* p = nullptr;
    TESSERA_CUDA_CHECK(cudaMallocHost(&p, bytes));
    staging_ = static_cast<char*>(p);
    staging_bytes_ = bytes;
  }

  std::shared_ptr<CudaContext> context_;
  char* staging_ = nullptr;
  size_t staging_bytes_ = 0;
  std::atomic<int64_t> waits_{0};
};

}  // namespace

std::shared_ptr<CudaContext> start_cuda_device(int device_index, bool allow_tf32) {
  auto context = std::make_shared<CudaContext>(device_index, allow_tf32);
  register_device_memory(context->device(), std::make_shared<CudaMemory>(context));
  return context;
}

}  // namespace tessera
