// A CPU emulation of the parts of the CUDA execution model that Tessera's kernels use, so that the
// kernel sources of kernels/cuda/ (translated by translate_cu.py: launches become emu::launch,
// dynamic shared memory a pointer) run on a machine without a GPU against their CPU twins.
//
// Each block runs its threads as fibers on one OS thread, round-robin: a thread runs until it
// reaches __syncthreads or a warp shuffle, then the next one runs. Blocks run one after another.
// So a missing barrier shows up as a read of data not yet written (shared memory starts as NaN),
// while the arithmetic is the host's (libm's expf, not CUDA's): the emulation checks indexing,
// masking and synchronisation, not the last ulp. Force-included ahead of every translated file.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

namespace emu {

const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();

// Runs body once per thread of every block of the grid, synchronously.
void launch_impl(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);

template <class F>
void launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t, F&& body) {
  launch_impl(grid, block, shared_bytes, std::function<void()>(std::forward<F>(body)));
}

// The block's dynamic shared memory (bytes 0xFF: NaN floats until written).
void* dynamic_shared();
void syncthreads();
// Exchanges 8 bytes with lane (own lane ^ offset) of the same warp.
uint64_t warp_exchange(uint64_t bits, int offset);

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

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
// Static locals are shared by the fibers of a block, which is what __shared__ means.
#define __shared__ static
#define __launch_bounds__(...)
#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::block_idx())
#define blockDim (::emu::block_dim())
#define gridDim (::emu::grid_dim())
#define __syncthreads() ::emu::syncthreads()
#define __shfl_xor_sync(mask, v, offset) ::emu::shfl_xor(mask, v, offset)
#define atomicAdd(address, value) ::emu::atomic_add(address, value)
