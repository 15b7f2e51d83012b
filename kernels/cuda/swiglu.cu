// CUDA SwiGLU: one element per thread in a grid-stride loop, as kernels/cpu/swiglu.cc.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/swiglu_cuda.h"

namespace tessera::kernels::cuda {
namespace {

__global__ void swiglu_forward_kernel(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* gate, const float* up,
                                       const float* dout, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    const float g = gate[i], s = 1.0f / (1.0f + expf(-g)), dy = dout[i];
    dgate[i] = dy * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] = dy * g * s;
  }
}

}  // namespace

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  swiglu_forward_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(out, gate, up, n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void swiglu_backward(float* dgate, float* dup, const float* gate, const float* up, const float* dout, int64_t n,
                     cudaStream_t stream) {
  if (n <= 0) return;
  swiglu_backward_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(dgate, dup, gate, up, dout, n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
