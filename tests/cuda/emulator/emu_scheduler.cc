// The CPU emulation's scheduler: runs a grid's blocks, and each block's threads as fibers on the
// calling thread, with the block barrier, warp shuffles, shared memory (dynamic and static,
// poisoned per block) and the launch checks of emu::launch (block size, shared-memory limits,
// pointer arguments).
#include <ucontext.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "tests/cuda/emulator/emu.h"
#include "tests/cuda/emulator/emu_state.h"

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
  std::vector<int> order;  // the order in which the block's fibers are resumed
  std::vector<char> stacks;
  std::vector<unsigned char> shared;
  const std::function<void()>* body = nullptr;
  const Kernel* kernel = nullptr;
  size_t shared_limit = 0;  // static + dynamic bytes allowed for this launch
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
  // Static __shared__ variables registered (and poisoned) in the current block, and their size.
  std::vector<const void*> statics;
  size_t static_bytes = 0;
  // An exception thrown inside a fiber, rethrown by launch_impl once the fibers are left.
  std::exception_ptr error;
  Order order_kind = Order::Shuffled;
  std::mt19937_64 rng{1};
};

Scheduler g;

// TESSERA_EMU_ORDER=sequential|shuffled, TESSERA_EMU_SEED=<integer>; read once, on first use.
bool configure_from_environment() {
  const char* order = std::getenv("TESSERA_EMU_ORDER");
  const char* seed = std::getenv("TESSERA_EMU_SEED");
  const std::string o = order ? order : "shuffled";
  if (o != "shuffled" && o != "sequential") {
    throw Refusal("TESSERA_EMU_ORDER must be `shuffled` or `sequential`, not `" + o + "`");
  }
  set_order(o == "sequential" ? Order::Sequential : Order::Shuffled,
            seed ? std::strtoull(seed, nullptr, 10) : 1);
  return true;
}

void ensure_configured() {
  static const bool configured = configure_from_environment();
  (void)configured;
}

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

// Exceptions must not cross a fiber's stack boundary: caught here, rethrown by launch_impl.
void fiber_main() {
  try {
    (*g.body)();
  } catch (...) {
    if (!g.error) g.error = std::current_exception();
  }
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

void start_fibers(int threads) {
  g.fibers.resize(threads);
  g.order.resize(threads);
  for (int i = 0; i < threads; ++i) {
    Fiber& f = g.fibers[i];
    f.tid = uint3{static_cast<unsigned int>(i % g.block_dim.x),
                  static_cast<unsigned int>(i / g.block_dim.x % g.block_dim.y),
                  static_cast<unsigned int>(i / (g.block_dim.x * g.block_dim.y))};
    f.done = false;
    ++g.warp_live[i / 32];
    g.order[i] = i;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = g.stacks.data() + static_cast<size_t>(i) * kStackBytes;
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &g.main_context;
    makecontext(&f.context, fiber_main, 0);
  }
  if (g.order_kind == Order::Shuffled) std::shuffle(g.order.begin(), g.order.end(), g.rng);
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
  g.statics.clear();
  g.static_bytes = 0;
  std::memset(g.shared.data(), 0xFF, g.shared.size());
  start_fibers(threads);
  while (g.live > 0 && !g.error) {
    for (const int i : g.order) {
      if (g.fibers[i].done) continue;
      g.current = i;
      swapcontext(&g.main_context, &g.fibers[i].context);
      if (g.error) return;  // the unfinished fibers are abandoned with their stacks
    }
  }
}

std::string where(const Kernel& k) {
  return std::string("kernel ") + k.name + " launched at " + k.file + ":" + std::to_string(k.line);
}

// The static + dynamic shared bytes a launch of k may use, or a refusal of its dynamic bytes.
size_t shared_limit(const Kernel& k, size_t dynamic_bytes) {
  const size_t opted = opted_in_shared_bytes(k.address);
  const size_t dynamic_max = opted > 0 ? opted : kDefaultSharedBytes;
  if (dynamic_bytes > dynamic_max) {
    throw Refusal(where(k) + ": " + std::to_string(dynamic_bytes) +
                  " bytes of dynamic shared memory exceed the " + std::to_string(dynamic_max) +
                  (opted > 0 ? "-byte limit set with cudaFuncSetAttribute"
                             : "-byte default; a kernel needing more calls cudaFuncSetAttribute("
                               "kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) "
                               "first (at most 227 KiB on sm_90)"));
  }
  return opted > 0 ? kMaxOptInSharedBytes : kDefaultSharedBytes;
}

}  // namespace

void set_order(Order order, uint64_t seed) {
  g.order_kind = order;
  g.rng.seed(seed);
}

const uint3& thread_idx() { return g.fibers[g.current].tid; }
const uint3& block_idx() { return g.block; }
const dim3& block_dim() { return g.block_dim; }
const dim3& grid_dim() { return g.grid_dim; }
void* dynamic_shared() { return g.shared.data(); }

void static_shared(void* p, size_t bytes) {
  if (std::find(g.statics.begin(), g.statics.end(), p) != g.statics.end()) return;
  g.statics.push_back(p);
  g.static_bytes += bytes;
  if (g.static_bytes + g.shared.size() > g.shared_limit) {
    throw Refusal(where(*g.kernel) + ": " + std::to_string(g.static_bytes) + " bytes of static and " +
                  std::to_string(g.shared.size()) + " of dynamic shared memory exceed the " +
                  std::to_string(g.shared_limit) + "-byte limit of a block");
  }
  std::memset(p, 0xFF, bytes);
}

void check_pointer_argument(const Kernel& kernel, int index, const void* p) {
  if (p == nullptr || memory_kind(p) == MemoryKind::Device) return;
  char address[32];
  std::snprintf(address, sizeof(address), "%p", p);
  throw Refusal(where(kernel) + ": pointer argument " + std::to_string(index) + " (" + address +
                ") is not device memory: a host pointer, or a device allocation already freed");
}

void launch_impl(const Kernel& kernel, dim3 grid, dim3 block, size_t shared_bytes,
                 const std::function<void()>& body) {
  ensure_configured();
  const size_t threads = size_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64) {
    throw Refusal(where(kernel) + ": invalid block (" + std::to_string(block.x) + ", " +
                  std::to_string(block.y) + ", " + std::to_string(block.z) + ")");
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    throw Refusal(where(kernel) + ": invalid grid (" + std::to_string(grid.x) + ", " +
                  std::to_string(grid.y) + ", " + std::to_string(grid.z) + ")");
  }
  g.shared_limit = shared_limit(kernel, shared_bytes);
  g.kernel = &kernel;
  g.body = &body;
  g.block_dim = block;
  g.grid_dim = grid;
  g.error = nullptr;
  g.shared.assign(shared_bytes, 0xFF);
  if (g.stacks.size() < threads * kStackBytes) g.stacks.resize(threads * kStackBytes);
  std::vector<uint3> blocks;
  blocks.reserve(size_t{grid.x} * grid.y * grid.z);
  for (unsigned int z = 0; z < grid.z; ++z) {
    for (unsigned int y = 0; y < grid.y; ++y) {
      for (unsigned int x = 0; x < grid.x; ++x) blocks.push_back(uint3{x, y, z});
    }
  }
  if (g.order_kind == Order::Shuffled) std::shuffle(blocks.begin(), blocks.end(), g.rng);
  for (const uint3& b : blocks) {
    run_block(b);
    if (g.error) break;
  }
  g.body = nullptr;
  g.kernel = nullptr;
  if (g.error) std::rethrow_exception(std::exchange(g.error, nullptr));
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

unsigned int ballot(unsigned int, int predicate) {
  const int lane = linear_tid() % 32;
  uint64_t bits = predicate ? uint64_t{1} << lane : 0;
  for (int offset = 16; offset > 0; offset >>= 1) bits |= warp_exchange(bits, offset);
  return static_cast<unsigned int>(bits);
}

}  // namespace emu
