// CUDA residual add, accumulate and scale: one element per thread in a grid-stride loop. Each
// thread reads and writes only its own element, so out may alias an input.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/residual_cuda.h"

namespace tessera::kernels::cuda {
namespace {

__global__ void residual_forward_kernel(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) out[i] = a[i] + b[i];
}

__global__ void accumulate_kernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) dst[i] += src[i];
}

__global__ void scale_kernel(float* x, float s, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) x[i] *= s;
}

}  // namespace

void residual_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  residual_forward_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(out, a, b, n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void accumulate(float* dst, const float* src, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  accumulate_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(dst, src, n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void scale(float* x, float s, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  scale_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(x, s, n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
