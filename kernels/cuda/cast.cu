// CUDA casts between float32 and the 16-bit formats (bfloat16, float16), one element per thread in
// a grid-stride loop.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/cast_cuda.h"
#include "kernels/cuda/common.cuh"

namespace tessera::kernels::cuda {
namespace {

__global__ void f32_to_bf16_kernel(__nv_bfloat16* out, const float* inp, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    out[i] = __float2bfloat16_rn(inp[i]);
  }
}

__global__ void bf16_to_f32_kernel(float* out, const __nv_bfloat16* inp, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    out[i] = __bfloat162float(inp[i]);
  }
}

__global__ void f32_to_f16_kernel(__half* out, const float* inp, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    out[i] = __float2half_rn(inp[i]);
  }
}

__global__ void f16_to_f32_kernel(float* out, const __half* inp, int64_t n) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    out[i] = __half2float(inp[i]);
  }
}

}  // namespace

void cast_f32_to_bf16(uint16_t* out, const float* inp, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  f32_to_bf16_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(
      reinterpret_cast<__nv_bfloat16*>(out), inp, n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void cast_bf16_to_f32(float* out, const uint16_t* inp, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  bf16_to_f32_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(
      out, reinterpret_cast<const __nv_bfloat16*>(inp), n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void cast_f32_to_f16(uint16_t* out, const float* inp, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  f32_to_f16_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(reinterpret_cast<__half*>(out), inp, n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void cast_f16_to_f32(float* out, const uint16_t* inp, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  f16_to_f32_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(out, reinterpret_cast<const __half*>(inp),
                                                                              n);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
