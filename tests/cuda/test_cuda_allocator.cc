// Tests of the caching DeviceAllocator. The [host] cases run its policy (size classes, reuse per
// stream, counters, the out-of-memory retry) on a malloc backend, so they run on every machine;
// the [cuda] case runs it on cudaMalloc.
#include <cstdlib>
#include <map>
#include <set>

#include "kernels/cuda/device_allocator.h"
#include "core/error.h"
#include "tests/cuda/cuda_test_util.h"

using tessera::kernels::cuda::DeviceAllocator;
using namespace tessera::cuda_testing;

namespace {

// A host backend with a capacity, counting its calls.
struct HostBackend {
  size_t capacity = size_t{1} << 40;
  size_t in_use = 0;
  int allocations = 0;
  int releases = 0;
  std::map<void*, size_t> sizes;

  DeviceAllocator::Backend make() {
    return {[this](size_t bytes) -> void* {
              if (in_use + bytes > capacity) return nullptr;
              void* p = std::malloc(bytes);
              sizes[p] = bytes;
              in_use += bytes;
              ++allocations;
              return p;
            },
            [this](void* p) {
              in_use -= sizes.at(p);
              sizes.erase(p);
              ++releases;
              std::free(p);
            }};
  }
};

cudaStream_t fake_stream(uintptr_t id) { return reinterpret_cast<cudaStream_t>(id); }

}  // namespace

TEST_CASE("allocator size classes waste at most a quarter", "[host][allocator]") {
  CHECK(DeviceAllocator::size_class(1) == 512);
  CHECK(DeviceAllocator::size_class(512) == 512);
  CHECK(DeviceAllocator::size_class(513) == 640);
  CHECK(DeviceAllocator::size_class(1024) == 1024);
  CHECK(DeviceAllocator::size_class(1025) == 1280);
  CHECK(DeviceAllocator::size_class((size_t{3} << 20) + 1) == (size_t{7} << 19));
  for (size_t bytes = 1; bytes < (size_t{1} << 34); bytes = bytes * 3 + 1) {
    const size_t c = DeviceAllocator::size_class(bytes);
    CAPTURE(bytes, c);
    CHECK(c >= bytes);
    CHECK((c <= 512 || c - bytes < c / 4 + 1));
  }
}

TEST_CASE("allocator reuses freed blocks of the same class and stream", "[host][allocator]") {
  HostBackend backend;
  DeviceAllocator alloc(backend.make());
  const cudaStream_t s1 = fake_stream(1), s2 = fake_stream(2);
  void* a = alloc.allocate(1000, s1);
  CHECK(alloc.stats().current_bytes == 1024);
  alloc.deallocate(a);
  CHECK(alloc.stats().current_bytes == 0);
  CHECK(alloc.stats().cached_bytes == 1024);
  // Same class (1000 and 1024 both round to 1024), same stream: the same block, no new call.
  void* b = alloc.allocate(1024, s1);
  CHECK(b == a);
  CHECK(backend.allocations == 1);
  // Another stream never gets a block freed on s1 (its work could still be in flight).
  alloc.deallocate(b);
  void* c = alloc.allocate(1000, s2);
  CHECK(c != a);
  CHECK(backend.allocations == 2);
  // A different class needs its own block.
  void* d = alloc.allocate(5000, s1);
  CHECK(d != a);
  CHECK(backend.allocations == 3);
  const auto stats = alloc.stats();
  CHECK(stats.current_bytes == 1024 + 5120);
  CHECK(stats.peak_bytes == 1024 + 5120);
  CHECK(stats.reserved_bytes == 2 * 1024 + 5120);
  CHECK(stats.cached_bytes == 1024);
  CHECK(stats.backend_allocations == 3);
  alloc.deallocate(c);
  alloc.deallocate(d);
  alloc.reset_peak();
  CHECK(alloc.stats().peak_bytes == 0);
  alloc.release_cached();
  CHECK(alloc.stats().reserved_bytes == 0);
  CHECK(backend.in_use == 0);
  CHECK(alloc.allocate(0, s1) == nullptr);
  alloc.deallocate(nullptr);
}

TEST_CASE("allocator steady state makes no backend calls", "[host][allocator]") {
  HostBackend backend;
  DeviceAllocator alloc(backend.make());
  const cudaStream_t s = fake_stream(1);
  // A "training step" allocating and freeing the same sizes: only the first step allocates.
  for (int step = 0; step < 10; ++step) {
    std::vector<void*> blocks;
    for (size_t bytes : {100, 4096, 70000, 70000, 1 << 20}) blocks.push_back(alloc.allocate(bytes, s));
    std::set<void*> distinct(blocks.begin(), blocks.end());
    CHECK(distinct.size() == blocks.size());
    for (void* p : blocks) alloc.deallocate(p);
  }
  CHECK(backend.allocations == 5);
  // Classes: 100 -> 512, 70000 -> 81920 (2^16 + 16384 steps), 1 MiB exact.
  CHECK(alloc.stats().peak_bytes == 512 + 4096 + 2 * 81920 + (1 << 20));
}

TEST_CASE("allocator frees its cache and retries when the device is full", "[host][allocator]") {
  HostBackend backend;
  backend.capacity = 8192;
  DeviceAllocator alloc(backend.make());
  const cudaStream_t s = fake_stream(1);
  void* a = alloc.allocate(4096, s);
  void* b = alloc.allocate(4096, s);
  alloc.deallocate(a);
  alloc.deallocate(b);
  // 6000 bytes (class 6144) do not fit next to the 8192 cached bytes: the cache goes back.
  void* c = alloc.allocate(6000, s);
  CHECK(c != nullptr);
  CHECK(backend.releases == 2);
  CHECK(alloc.stats().reserved_bytes == 6144);
  // Nothing cached to give back: the error names the request and the counters.
  CHECK_THROWS_WITH(alloc.allocate(4096, s),
                    Catch::Contains("out of device memory allocating 4096 bytes") &&
                        Catch::Contains("6144 bytes in use"));
  CHECK_THROWS_AS(alloc.deallocate(reinterpret_cast<void*>(0x10)), tessera::Error);
  alloc.deallocate(c);
}

TEST_CASE("allocator destructor returns every block", "[host][allocator]") {
  HostBackend backend;
  {
    DeviceAllocator alloc(backend.make());
    void* a = alloc.allocate(100, fake_stream(1));
    alloc.allocate(200000, fake_stream(1));  // still handed out at destruction
    alloc.deallocate(a);
  }
  CHECK(backend.in_use == 0);
  CHECK(backend.releases == 2);
}

TEST_CASE("allocator on cudaMalloc reuses device blocks", "[cuda][allocator]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  DeviceAllocator alloc;
  void* a = alloc.allocate(size_t{3} << 20, stream.get());
  REQUIRE(a != nullptr);
  TESSERA_CUDA_CHECK(cudaMemsetAsync(a, 0x3F, size_t{3} << 20, stream.get()));
  unsigned char byte = 0;
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(&byte, static_cast<unsigned char*>(a) + 12345, 1,
                                     cudaMemcpyDeviceToHost, stream.get()));
  stream.sync();
  CHECK(byte == 0x3F);
  alloc.deallocate(a);
  void* b = alloc.allocate((size_t{3} << 20) - 100, stream.get());
  CHECK(b == a);
  CHECK(alloc.stats().backend_allocations == 1);
  CHECK(alloc.stats().peak_bytes == (size_t{3} << 20));
  alloc.deallocate(b);
  alloc.release_cached();
  CHECK(alloc.stats().reserved_bytes == 0);
}
