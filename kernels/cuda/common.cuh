// Private helpers of the CUDA kernels (included by .cu files only): launch sizes, warp and block
// reductions, and a deterministic column sum used by the bias, LayerNorm and position-embedding
// gradients.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.h"

namespace tessera::kernels::cuda::detail {

constexpr int kThreads = 256;
constexpr unsigned int kFullMask = 0xffffffffu;

// Blocks for a grid-stride loop over n elements: enough to fill an H100/H200 several times
// over (132 SMs); the loop covers the rest. At least one block, so n = 0 launches are valid.
inline unsigned int blocks_for(int64_t n, int threads = kThreads) {
  constexpr int64_t kMaxBlocks = 4096;
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks < kMaxBlocks ? blocks : kMaxBlocks));
}

// First index and stride of a 1-D grid-stride loop, in 64 bits so n may exceed 2^31.
__device__ inline int64_t grid_start() { return blockIdx.x * int64_t{blockDim.x} + threadIdx.x; }
__device__ inline int64_t grid_stride() { return int64_t{gridDim.x} * blockDim.x; }

template <class T>
__device__ inline T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to every thread.
// `scratch` is 32 elements of shared memory; the block must reach this call together. The
// order of the additions is fixed by the block shape, so results repeat run to run.
template <class T>
__device__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : T(0);
  return warp_sum(v);
}

__device__ inline float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

// out[c] += sum_r f(r, c) for c < cols. A block of 32 x 32 threads owns a strip of 32 columns:
// threadIdx.x picks the column (so each warp reads 128 contiguous bytes of a row), threadIdx.y
// strides over the rows, and the 32 partial sums are added in a fixed order. No atomics: the
// result is the same on every run, and `out` needs no zeroing pass. The parallelism is one
// block per 32 columns, which is enough for the widths of a transformer (768 columns = 24
// blocks); correctness before speed.
constexpr int kColumnStrip = 32;

template <class F>
__global__ void __launch_bounds__(kColumnStrip * kColumnStrip)
    column_sum_kernel(float* out, int64_t rows, int64_t cols, F f) {
  __shared__ float partial[kColumnStrip][kColumnStrip + 1];
  const int64_t c = blockIdx.x * int64_t{kColumnStrip} + threadIdx.x;
  float acc = 0.0f;
  if (c < cols) {
    for (int64_t r = threadIdx.y; r < rows; r += kColumnStrip) acc += f(r, c);
  }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float sum = 0.0f;
    for (int y = 0; y < kColumnStrip; ++y) sum += partial[y][threadIdx.x];
    out[c] += sum;
  }
}

template <class F>
void launch_column_sum(float* out, int64_t rows, int64_t cols, F f, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  const dim3 block(kColumnStrip, kColumnStrip);
  const auto grid = static_cast<unsigned int>((cols + kColumnStrip - 1) / kColumnStrip);
  column_sum_kernel<<<grid, block, 0, stream>>>(out, rows, cols, f);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda::detail
