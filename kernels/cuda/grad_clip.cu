// CUDA sum of squares (two deterministic passes: per-block partials, then one block adds them in
// order) and the clip scaling that reads the norm on the device.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/grad_clip_cuda.h"

namespace tessera::kernels::cuda {
namespace {

// The H200 has 132 SMs; 1024 blocks of 256 threads keep all of them busy for large buffers.
static_assert(kSumSquaresScratch % 32 == 0, "scratch must hold whole warps of partials");

__global__ void sum_squares_partial_kernel(double* partial, const float* x, int64_t n) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    const double xi = x[i];
    s += xi * xi;
  }
  s = detail::block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_squares_final_kernel(double* out, const double* partial, int parts) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) s += partial[i];
  s = detail::block_sum(s, scratch);
  if (threadIdx.x == 0) *out = s;
}

__global__ void add_in_order_kernel(float* out, const double* xs, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += xs[i];
  *out = static_cast<float>(s);
}

// Every thread reads the same norm; the coefficient is formed as in kernels/cpu/grad_clip.cc
// (float division). A non-finite sum leaves x as it is: multiplying by a NaN (or by the 0 of an
// infinite norm) would destroy the gradients before the caller, which reads the sum for the
// logged norm anyway, applies train.on_nan (abort, or skip the update) as the CPU path does.
__global__ void clip_scale_kernel(float* x, int64_t n, const double* sum_sq, float max_norm) {
  const double sum = *sum_sq;
  if (!isfinite(sum)) return;
  const float coef = max_norm / (static_cast<float>(sqrt(sum)) + 1e-6f);
  const float c = coef > 1.0f ? 1.0f : coef;
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) x[i] *= c;
}

}  // namespace

void sum_squares(double* out, const float* x, int64_t n, double* scratch, cudaStream_t stream) {
  // Fewer blocks for small buffers; the partials beyond `parts` are neither written nor read.
  const unsigned int parts =
      std::min<unsigned int>(detail::blocks_for(n), static_cast<unsigned int>(kSumSquaresScratch));
  sum_squares_partial_kernel<<<parts, detail::kThreads, 0, stream>>>(scratch, x, n < 0 ? 0 : n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
  sum_squares_final_kernel<<<1, detail::kThreads, 0, stream>>>(out, scratch,
                                                               static_cast<int>(parts));
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void add_in_order(float* out, const double* xs, int64_t n, cudaStream_t stream) {
  add_in_order_kernel<<<1, 1, 0, stream>>>(out, xs, n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void clip_scale(float* x, int64_t n, const double* sum_sq, float max_norm, cudaStream_t stream) {
  if (max_norm <= 0.0f || n <= 0) return;
  clip_scale_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(x, n, sum_sq,
                                                                            max_norm);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
