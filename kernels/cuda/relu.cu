// CUDA ReLU forward/backward: one element per thread in a grid-stride loop.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/relu_cuda.h"

namespace tessera::kernels::cuda {
namespace {

__global__ void relu_forward_kernel(float* out, const float* inp, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    out[i] = fmaxf(inp[i], 0.0f);
  }
}

// Written as a select, as the CPU kernel: dout passes where inp > 0 (NaN inputs give 0).
__global__ void relu_backward_kernel(float* dinp, const float* inp, const float* dout, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
  }
}

}  // namespace

void relu_forward(float* out, const float* inp, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  relu_forward_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(out, inp, n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void relu_backward(float* dinp, const float* inp, const float* dout, int64_t n,
                   cudaStream_t stream) {
  if (n <= 0) return;
  relu_backward_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(dinp, inp, dout, n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
