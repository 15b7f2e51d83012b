// CUDA rotary embedding: one thread per rotated pair in a grid-stride loop, as kernels/cpu/rope.cc.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rope_cuda.h"

namespace tessera::kernels::cuda {
namespace {

// One thread per (row, head, i < D/2) pair; sign -1 is the transpose rotation (backward).
__global__ void rope_kernel(float* out, const float* inp, const float* cos_table, const float* sin_table,
                            int64_t rows, int64_t seq_len, int64_t heads, int64_t head_dim, float sign) {
  const int64_t half = head_dim / 2, pairs = rows * heads * half;
  for (int64_t p = detail::grid_start(); p < pairs; p += detail::grid_stride()) {
    const int64_t i = p % half, rh = p / half, r = rh / heads;
    const int64_t a = rh * head_dim + i, b = a + half;
    const float c = cos_table[(r % seq_len) * half + i], s = sign * sin_table[(r % seq_len) * half + i];
    const float x = inp[a], y = inp[b];
    out[a] = x * c - y * s;
    out[b] = y * c + x * s;
  }
}

void launch_rope(float* out, const float* inp, const float* cos_table, const float* sin_table, int64_t rows,
                 int64_t seq_len, int64_t heads, int64_t head_dim, float sign, cudaStream_t stream) {
  const int64_t pairs = rows * heads * (head_dim / 2);
  if (pairs <= 0) return;
  rope_kernel<<<detail::blocks_for(pairs), detail::kThreads, 0, stream>>>(out, inp, cos_table, sin_table, rows,
                                                                          seq_len, heads, head_dim, sign);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void rope_forward(float* out, const float* inp, const float* cos_table, const float* sin_table, int64_t rows,
                  int64_t seq_len, int64_t heads, int64_t head_dim, cudaStream_t stream) {
  launch_rope(out, inp, cos_table, sin_table, rows, seq_len, heads, head_dim, 1.0f, stream);
}

void rope_backward(float* dinp, const float* dout, const float* cos_table, const float* sin_table, int64_t rows,
                   int64_t seq_len, int64_t heads, int64_t head_dim, cudaStream_t stream) {
  launch_rope(dinp, dout, cos_table, sin_table, rows, seq_len, heads, head_dim, -1.0f, stream);
}

}  // namespace tessera::kernels::cuda
