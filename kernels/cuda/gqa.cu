// CUDA grouped key/value packing and its gradient, as kernels/cpu/gqa.cc.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gqa_cuda.h"

namespace tessera::kernels::cuda {
namespace {

// One thread per element of the packed [rows, 3 * H * D] buffer.
__global__ void gqa_pack_kernel(float* qkv, const float* q, const float* k, const float* v, int64_t rows,
                                int64_t heads, int64_t groups, int64_t head_dim) {
  const int64_t A = heads * head_dim, Kw = groups * head_dim, per_group = heads / groups, n = rows * 3 * A;
  for (int64_t e = detail::grid_start(); e < n; e += detail::grid_stride()) {
    const int64_t r = e / (3 * A), col = e % (3 * A), part = col / A, hd = col % A;
    const int64_t kv = r * Kw + (hd / head_dim / per_group) * head_dim + hd % head_dim;
    qkv[e] = part == 0 ? q[r * A + hd] : part == 1 ? k[kv] : v[kv];
  }
}

// One thread per q element and per key/value element; each key/value thread sums its group's
// heads in head order, as the CPU kernel does.
__global__ void gqa_unpack_kernel(float* dq, float* dk, float* dv, const float* dqkv, int64_t rows, int64_t heads,
                                  int64_t groups, int64_t head_dim) {
  const int64_t A = heads * head_dim, Kw = groups * head_dim, per_group = heads / groups;
  const int64_t nq = rows * A, nkv = rows * Kw;
  for (int64_t e = detail::grid_start(); e < nq + nkv; e += detail::grid_stride()) {
    if (e < nq) {
      dq[e] = dqkv[(e / A) * 3 * A + e % A];
      continue;
    }
    const int64_t f = e - nq, r = f / Kw, g = (f % Kw) / head_dim, d = f % head_dim;
    float sk = 0.0f, sv = 0.0f;
    for (int64_t h = g * per_group; h < (g + 1) * per_group; ++h) {
      sk += dqkv[r * 3 * A + A + h * head_dim + d];
      sv += dqkv[r * 3 * A + 2 * A + h * head_dim + d];
    }
    dk[f] = sk;
    dv[f] = sv;
  }
}

}  // namespace

void gqa_pack_forward(float* qkv, const float* q, const float* k, const float* v, int64_t rows, int64_t heads,
                      int64_t groups, int64_t head_dim, cudaStream_t stream) {
  const int64_t n = rows * 3 * heads * head_dim;
  if (n <= 0) return;
  gqa_pack_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(qkv, q, k, v, rows, heads, groups, head_dim);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void gqa_pack_backward(float* dq, float* dk, float* dv, const float* dqkv, int64_t rows, int64_t heads,
                       int64_t groups, int64_t head_dim, cudaStream_t stream) {
  const int64_t n = rows * (heads + groups) * head_dim;
  if (n <= 0) return;
  gqa_unpack_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(dq, dk, dv, dqkv, rows, heads, groups,
                                                                            head_dim);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
