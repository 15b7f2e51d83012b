// DeviceAllocator: a caching allocator for device memory. Each block comes from one cudaMalloc
// of its size class and goes back to a free list when released, to be handed out again for the
// next request of that class on the same stream; nothing is returned to CUDA until
// release_cached() (or the destructor), so the training loop's steady state makes no
// cudaMalloc/cudaFree calls, whose implicit device synchronisation would stall the streams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

class DeviceAllocator {
 public:
  // Where blocks come from. `allocate` returns nullptr when the device is out of memory (and
  // throws on any other failure); the default is cudaMalloc/cudaFree on the current device.
  struct Backend {
    std::function<void*(size_t)> allocate;
    std::function<void(void*)> release;
  };
  static Backend cuda_backend();

  // All in bytes. A block counts with its size class, not the requested size.
  struct Stats {
    size_t current_bytes = 0;   // in blocks handed out now
    size_t peak_bytes = 0;      // the most current_bytes has been (since reset_peak)
    size_t reserved_bytes = 0;  // obtained from the backend and not yet returned to it
    size_t cached_bytes = 0;    // reserved, free, waiting for reuse
    int64_t backend_allocations = 0;  // calls of backend.allocate, ever
  };

  explicit DeviceAllocator(Backend backend = cuda_backend());
  // Returns every block to the backend, including blocks still handed out.
  ~DeviceAllocator();
  DeviceAllocator(const DeviceAllocator&) = delete;
  DeviceAllocator& operator=(const DeviceAllocator&) = delete;

  // A block of at least `bytes` (nullptr for 0 bytes), for use on `stream`. A block freed by
  // work on one stream is reused only for requests on that stream: stream order then makes the
  // reuse safe without events. Memory used on another stream must be ordered by the caller
  // (an event) before it is deallocated. When the backend is out of memory, the cached blocks
  // are returned to it (cudaFree synchronises: out of the hot path) and the request retried;
  // if it still fails, throws tessera::Error with the request and the counters.
  void* allocate(size_t bytes, cudaStream_t stream);
  // Returns a block from allocate() to its free list; nullptr is ignored, anything else that
  // is not a live block throws.
  void deallocate(void* ptr);
  // Returns all free cached blocks to the backend.
  void release_cached();

  Stats stats() const;
  void reset_peak();

  // The size class of a request: at least 512 bytes, then four classes per power of two
  // (2^k x 1, 1.25, 1.5, 1.75), so a block is never more than 25% larger than its request.
  static size_t size_class(size_t bytes);

 private:
  struct Block {
    size_t size;
    cudaStream_t stream;
  };
  void release_cached_locked();

  Backend backend_;
  mutable std::mutex mutex_;
  std::unordered_map<void*, Block> live_;
  // Free blocks by (stream, size class).
  std::map<std::pair<cudaStream_t, size_t>, std::vector<void*>> free_;
  Stats stats_;
};

}  // namespace tessera::kernels::cuda
