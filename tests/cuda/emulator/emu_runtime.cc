// The CPU emulation's runtime: the fiber scheduler behind emu::launch, the block barrier and warp
// shuffles, and the few CUDA runtime API calls that the kernels and the [cuda] tests make, backed
// by host memory. Linked instead of libcudart into tessera_cuda_emulated_tests.
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "tests/cuda/emulator/emu.h"

namespace emu {
namespace {

// Kernel frames are small (no recursion, a few locals); 64 KiB leaves room for libm and asserts.
constexpr size_t kStackBytes = size_t{64} << 10;

struct Fiber {
  ucontext_t context;
  uint3 tid;
  bool done = false;
};

// One grid runs at a time, on the calling thread: plain globals are the per-launch state.
struct Scheduler {
  ucontext_t main_context;
  std::vector<Fiber> fibers;
  std::vector<char> stacks;
  std::vector<unsigned char> shared;
  const std::function<void()>* body = nullptr;
  int current = 0;
  int live = 0;
  uint3 block{};
  dim3 block_dim{};
  dim3 grid_dim{};
  // The block barrier: arrivals in this generation, and the generation count.
  int arrived = 0;
  uint64_t generation = 0;
  // Per-warp barriers and exchange slots for shuffles.
  std::vector<int> warp_live, warp_arrived;
  std::vector<uint64_t> warp_generation;
  std::vector<uint64_t> exchange;
};

Scheduler g;

void yield() { swapcontext(&g.fibers[g.current].context, &g.main_context); }

int linear_tid() {
  const uint3& t = g.fibers[g.current].tid;
  return static_cast<int>(t.x + g.block_dim.x * (t.y + g.block_dim.y * t.z));
}

// A thread that returns stops counting towards the barriers it would have reached (CUDA's
// behaviour for exited threads); any barrier now complete opens.
void finish_current() {
  g.fibers[g.current].done = true;
  --g.live;
  const int warp = linear_tid() / 32;
  --g.warp_live[warp];
  if (g.arrived > 0 && g.arrived >= g.live) {
    g.arrived = 0;
    ++g.generation;
  }
  if (g.warp_arrived[warp] > 0 && g.warp_arrived[warp] >= g.warp_live[warp]) {
    g.warp_arrived[warp] = 0;
    ++g.warp_generation[warp];
  }
}

void fiber_main() {
  (*g.body)();
  finish_current();
  // Returning resumes main_context through uc_link.
}

void warp_barrier(int warp) {
  const uint64_t gen = g.warp_generation[warp];
  if (++g.warp_arrived[warp] >= g.warp_live[warp]) {
    g.warp_arrived[warp] = 0;
    ++g.warp_generation[warp];
    return;
  }
  while (g.warp_generation[warp] == gen) yield();
}

void run_block(uint3 block) {
  const int threads = static_cast<int>(g.block_dim.x * g.block_dim.y * g.block_dim.z);
  const int warps = (threads + 31) / 32;
  g.block = block;
  g.live = threads;
  g.arrived = 0;
  g.warp_live.assign(warps, 0);
  g.warp_arrived.assign(warps, 0);
  g.warp_generation.assign(warps, 0);
  g.exchange.assign(static_cast<size_t>(warps) * 32, 0);
  std::memset(g.shared.data(), 0xFF, g.shared.size());
  g.fibers.resize(threads);
  for (int i = 0; i < threads; ++i) {
    Fiber& f = g.fibers[i];
    f.tid = uint3{static_cast<unsigned int>(i % g.block_dim.x),
                  static_cast<unsigned int>(i / g.block_dim.x % g.block_dim.y),
                  static_cast<unsigned int>(i / (g.block_dim.x * g.block_dim.y))};
    f.done = false;
    ++g.warp_live[i / 32];
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = g.stacks.data() + static_cast<size_t>(i) * kStackBytes;
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &g.main_context;
    makecontext(&f.context, fiber_main, 0);
  }
  while (g.live > 0) {
    for (int i = 0; i < threads; ++i) {
      if (g.fibers[i].done) continue;
      g.current = i;
      swapcontext(&g.main_context, &g.fibers[i].context);
    }
  }
}

}  // namespace

const uint3& thread_idx() { return g.fibers[g.current].tid; }
const uint3& block_idx() { return g.block; }
const dim3& block_dim() { return g.block_dim; }
const dim3& grid_dim() { return g.grid_dim; }
void* dynamic_shared() { return g.shared.data(); }

void launch_impl(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  const size_t threads = size_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024) throw std::runtime_error("emu::launch: bad block size");
  g.body = &body;
  g.block_dim = block;
  g.grid_dim = grid;
  g.shared.assign(shared_bytes, 0xFF);
  if (g.stacks.size() < threads * kStackBytes) g.stacks.resize(threads * kStackBytes);
  for (unsigned int z = 0; z < grid.z; ++z) {
    for (unsigned int y = 0; y < grid.y; ++y) {
      for (unsigned int x = 0; x < grid.x; ++x) run_block(uint3{x, y, z});
    }
  }
  g.body = nullptr;
}

void syncthreads() {
  const uint64_t gen = g.generation;
  if (++g.arrived >= g.live) {
    g.arrived = 0;
    ++g.generation;
    return;
  }
  while (g.generation == gen) yield();
}

uint64_t warp_exchange(uint64_t bits, int offset) {
  const int tid = linear_tid(), warp = tid / 32, lane = tid % 32;
  g.exchange[warp * 32 + lane] = bits;
  warp_barrier(warp);  // every lane has written
  const uint64_t out = g.exchange[warp * 32 + (lane ^ offset)];
  warp_barrier(warp);  // every lane has read before the slots are reused
  return out;
}

}  // namespace emu

// The CUDA runtime calls used by the kernels and the tests, on host memory. Streams are fake
// (every call completes before it returns, so stream order holds trivially).
extern "C" {

cudaError_t cudaMalloc(void** ptr, size_t size) {
  *ptr = std::malloc(size > 0 ? size : 1);
  return *ptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind) {
  if (count > 0) std::memmove(dst, src, count);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, count, kind);
}
cudaError_t cudaMemset(void* ptr, int value, size_t count) {
  std::memset(ptr, value, count);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t) {
  return cudaMemset(ptr, value, count);
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *free_bytes = size_t{1} << 40;
  *total = size_t{1} << 40;
  return cudaSuccess;
}
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t) { return "emulated CUDA error"; }
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* prop, int) {
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "CPU emulation of CUDA (tests/cuda/emulator)");
  prop->major = 9;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  *stream = reinterpret_cast<cudaStream_t>(std::malloc(1));
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  return cudaStreamCreate(stream);
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::free(stream);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaFuncSetAttribute(const void*, enum cudaFuncAttribute, int) { return cudaSuccess; }

}  // extern "C"
