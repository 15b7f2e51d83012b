// A CPU emulation of the parts of the CUDA execution model that Tessera's kernels use, so that the
// kernel sources of kernels/cuda/ (translated by translate_cu.py: launches become emu::launch,
// dynamic shared memory a pointer, static __shared__ arrays get registered) run on a machine
// without a GPU against their CPU twins.
//
// Each block runs its threads as fibers on one OS thread: a thread runs until it reaches
// __syncthreads or a warp shuffle, then the next one runs. So a missing barrier shows up as a
// read of data not yet written, and the emulation makes such reads visible: shared memory
// (dynamic, and static per block) and fresh cudaMalloc memory start as 0xFF bytes (NaN floats, -1
// integers). Blocks, and the threads of a block, run in a shuffled order by default, different
// for every launch (TESSERA_EMU_ORDER=sequential turns it off, TESSERA_EMU_SEED picks the seed),
// so a result that depends on block order changes between runs. The arithmetic is the host's
// (libm's expf, not CUDA's): the emulation checks indexing, masking and synchronisation, not the
// last ulp. What it refuses (throwing emu::Refusal from the launch, or returning an error from a
// runtime call whose message cudaGetErrorString gives) is listed in docs/cuda.md. Force-included
// ahead of every translated file.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace emu {

// A launch or an access that a GPU would reject or fault on, or that would race there.
class Refusal : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Shared-memory limits of sm_90: 48 KiB per block unless the kernel opted in with
// cudaFuncSetAttribute(MaxDynamicSharedMemorySize), at most 227 KiB with the opt-in.
constexpr size_t kDefaultSharedBytes = size_t{48} << 10;
constexpr size_t kMaxOptInSharedBytes = size_t{227} << 10;

// --- Memory: the arena of device allocations (cudaMalloc) and pinned host ones. -----------------
enum class MemoryKind { Host, Device };
// Device when p lies in a live cudaMalloc allocation (its one-past-the-end address included, so
// an empty view at the end is fine), else Host: host memory, or device memory already freed.
MemoryKind memory_kind(const void* p);
// Throws Refusal, naming `what`, unless [p, p + bytes) lies inside one live device allocation.
// For stand-ins of device libraries (a cuBLASLt on the CPU GEMM) that read device buffers.
void require_device_range(const void* p, size_t bytes, const std::string& what);

// --- Scheduling. ---------------------------------------------------------------------------------
// Sequential runs blocks in grid order and threads in index order; Shuffled permutes both, anew
// for every launch, from `seed`. The default comes from TESSERA_EMU_ORDER / TESSERA_EMU_SEED.
enum class Order { Sequential, Shuffled };
void set_order(Order order, uint64_t seed);

// What a translated launch knows about its kernel: its address (null for a template kernel whose
// arguments are deduced, which cannot be named without them) and where it is launched.
struct Kernel {
  const void* address;
  const char* name;
  const char* file;
  int line;
};

// Runs body once per thread of every block of the grid, synchronously; throws Refusal before
// any thread runs when the launch is invalid (block size, shared memory over the limit).
void launch_impl(const Kernel& kernel, dim3 grid, dim3 block, size_t shared_bytes,
                 const std::function<void()>& body);
// Refuses a non-null pointer argument that is not device memory (argument `index`, from 1).
void check_pointer_argument(const Kernel& kernel, int index, const void* p);

template <class Tuple, size_t... I>
void check_pointer_arguments(const Kernel& kernel, const Tuple& args, std::index_sequence<I...>) {
  auto check = [&](int index, const auto& arg) {
    if constexpr (std::is_pointer_v<std::decay_t<decltype(arg)>>) {
      check_pointer_argument(kernel, index, static_cast<const void*>(arg));
    }
  };
  (check(static_cast<int>(I) + 1, std::get<I>(args)), ...);
}

// The translated form of kernel<<<grid, block, shared, stream>>>(args...): the arguments are
// evaluated once, their pointers checked, and every thread calls the kernel with copies of them.
// Pointers inside struct arguments are not seen (a limit of the check).
template <class Call, class... Args>
void launch(const Kernel& kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t,
            Call&& call, Args&&... args) {
  const std::tuple<std::decay_t<Args>...> values(std::forward<Args>(args)...);
  check_pointer_arguments(kernel, values, std::index_sequence_for<Args...>{});
  launch_impl(kernel, grid, block, shared_bytes, [&] {
    std::tuple<std::decay_t<Args>...> copy = values;  // kernel parameters are per thread
    std::apply(call, copy);
  });
}

// --- Inside a kernel. ----------------------------------------------------------------------------
const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();

// The block's dynamic shared memory (bytes 0xFF until written).
void* dynamic_shared();
// Registers a static __shared__ variable (a function-local static here, shared by the fibers of
// a block and, unless reset, by consecutive blocks): the first thread of each block to reach
// its declaration fills it with 0xFF, and its size counts against the shared-memory limit.
void static_shared(void* p, size_t bytes);
void syncthreads();
// Exchanges 8 bytes with lane (own lane ^ offset) of the same warp.
uint64_t warp_exchange(uint64_t bits, int offset);
// Bit i set when lane i of the warp passed a non-zero predicate (every lane must call it).
unsigned int ballot(unsigned int mask, int predicate);

template <class T>
T shfl_xor(unsigned int, T v, int offset) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_exchange(bits, offset);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

// Fibers never run at the same time, so a plain add is atomic here.
template <class T>
T atomic_add(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}

}  // namespace emu

// CUDA's device math functions are global names; the host's live in std.
using std::isfinite;
using std::isinf;
using std::isnan;

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
// Static locals are shared by the fibers of a block, which is what __shared__ means; the
// translator registers each one (emu::static_shared) so every block sees fresh poison.
#define __shared__ static
#define __launch_bounds__(...)
#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::block_idx())
#define blockDim (::emu::block_dim())
#define gridDim (::emu::grid_dim())
#define __syncthreads() ::emu::syncthreads()
#define __shfl_xor_sync(mask, v, offset) ::emu::shfl_xor(mask, v, offset)
#define __ballot_sync(mask, predicate) ::emu::ballot(mask, predicate)
#define __popc(x) __builtin_popcount(x)
#define atomicAdd(address, value) ::emu::atomic_add(address, value)
