// CUDA causal attention, flash-attention style (Dao et al.): a block owns one (batch, head) and
// one tile of 32 queries (forward, dQ) or 32 keys (dK, dV), and streams the tiles on the other
// side through shared memory. Scalar fp32 arithmetic, no tensor cores: correctness first; the
// memory stays O(T) per row whatever the sequence length.
//
// Numerics. With S = scale Q K^T (scale = 1/sqrt(D)), forward keeps per query row the running
// max m and sum l of exp(S - m); a new key tile with max m' rescales the accumulated output and
// l by exp(m - m'). At the end out = acc / l and lse = m + log l. Backward recomputes
// P = exp(S - lse) and uses delta = rowsum(dO * O) = rowsum(P * dP):
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - delta),  dQ = scale dS K,  dK = scale dS^T Q.
#include <cuda_runtime.h>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/common.cuh"

namespace tessera::kernels::cuda {
namespace {

// Queries and keys per tile: one warp lane per key column of a score tile.
constexpr int kTile = 32;
constexpr int kWarps = 8;
constexpr int kBlockThreads = kWarps * 32;
constexpr int kRowsPerWarp = kTile / kWarps;
// Row stride of a score tile in shared memory (padded: no bank conflicts down a column).
constexpr int kScoreStride = kTile + 1;

// Geometry of one launch. Shared tiles have row stride `lds` = D rounded up to odd, so the
// lanes of a warp reading 32 different rows at one column hit 32 different banks.
struct Shape {
  int64_t T;
  int64_t H;
  int D;
  int lds;
  float scale;
  __device__ int64_t ld_qkv() const { return 3 * H * D; }
  __device__ int64_t ld_out() const { return H * D; }
};

// Rows [t0, t0 + kTile) of a [T, D] view with row stride ld into a shared tile; rows past T
// are zero so that they add nothing.
__device__ void load_tile(float* tile, const float* src, int64_t t0, const Shape& s, int64_t ld) {
  for (int idx = threadIdx.x; idx < kTile * s.D; idx += blockDim.x) {
    const int i = idx / s.D, d = idx - i * s.D;
    const int64_t t = t0 + i;
    tile[i * s.lds + d] = t < s.T ? src[t * ld + d] : 0.0f;
  }
}

__device__ void zero_tile(float* tile, const Shape& s) {
  for (int idx = threadIdx.x; idx < kTile * s.lds; idx += blockDim.x) tile[idx] = 0.0f;
}

__device__ float dot_rows(const float* a, const float* b, int D) {
  float acc = 0.0f;
  for (int d = 0; d < D; ++d) acc += a[d] * b[d];
  return acc;
}

// For the query rows [q0, q0 + kTile) of head (b, h): lse from the forward pass and
// delta = rowsum(dO * O), dO read from its shared tile and O from global memory. Rows past T
// get zeros (their probabilities are masked to 0 anyway). One warp per row.
__device__ void load_row_stats(float* row_lse, float* row_delta, const float* dO_tile,
                               const float* out_head, const float* lse_head, int64_t q0,
                               const Shape& s) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = warp * kRowsPerWarp + r;
    const int64_t t = q0 + i;
    float acc = 0.0f;
    if (t < s.T) {
      for (int d = lane; d < s.D; d += 32) acc += dO_tile[i * s.lds + d] * out_head[t * s.ld_out() + d];
    }
    acc = detail::warp_sum(acc);
    if (lane == 0) {
      row_delta[i] = acc;
      row_lse[i] = t < s.T ? lse_head[t] : 0.0f;
    }
  }
}

__global__ void __launch_bounds__(kBlockThreads)
    attention_forward_kernel(float* out, float* lse, const float* qkv, Shape s) {
  extern __shared__ float smem[];
  float* q = smem;
  float* k = q + kTile * s.lds;
  float* v = k + kTile * s.lds;
  float* acc = v + kTile * s.lds;
  float* p = acc + kTile * s.lds;  // scores, then probabilities [kTile][kScoreStride]
  float* row_m = p + kTile * kScoreStride;
  float* row_l = row_m + kTile;
  float* row_alpha = row_l + kTile;

  const int64_t bh = blockIdx.x, b = bh / s.H, h = bh % s.H;
  const int q_tile = blockIdx.y;
  const int64_t q0 = int64_t{q_tile} * kTile;
  const float* q_head = qkv + b * s.T * s.ld_qkv() + h * s.D;
  const float* k_head = q_head + s.H * s.D;
  const float* v_head = k_head + s.H * s.D;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  load_tile(q, q_head, q0, s, s.ld_qkv());
  zero_tile(acc, s);
  if (threadIdx.x < kTile) {
    row_m[threadIdx.x] = -INFINITY;
    row_l[threadIdx.x] = 0.0f;
  }
  // Causal: only key tiles up to the diagonal one. Tile 0 always holds key 0, which every
  // query sees, so each row's max is finite from the first tile on.
  for (int kt = 0; kt <= q_tile; ++kt) {
    const int64_t k0 = int64_t{kt} * kTile;
    __syncthreads();  // the previous tile's k, v and p are no longer read
    load_tile(k, k_head, k0, s, s.ld_qkv());
    load_tile(v, v_head, k0, s, s.ld_qkv());
    __syncthreads();
    for (int idx = threadIdx.x; idx < kTile * kTile; idx += blockDim.x) {
      const int i = idx / kTile, j = idx % kTile;
      const int64_t tq = q0 + i, tk = k0 + j;
      p[i * kScoreStride + j] =
          (tk <= tq && tk < s.T) ? dot_rows(q + i * s.lds, k + j * s.lds, s.D) * s.scale : -INFINITY;
    }
    __syncthreads();
    // Online softmax, one warp per row, lane j on key j.
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int i = warp * kRowsPerWarp + r;
      const float x = p[i * kScoreStride + lane];
      const float m_old = row_m[i];
      const float m_new = fmaxf(m_old, detail::warp_max(x));
      float e = 0.0f, alpha = 1.0f;
      if (m_new != -INFINITY) {
        e = expf(x - m_new);          // 0 for masked keys
        alpha = expf(m_old - m_new);  // 0 on the first tile
      }
      const float sum = detail::warp_sum(e);
      p[i * kScoreStride + lane] = e;
      if (lane == 0) {
        row_l[i] = row_l[i] * alpha + sum;
        row_m[i] = m_new;
        row_alpha[i] = alpha;
      }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < kTile * s.D; idx += blockDim.x) {
      const int i = idx / s.D, d = idx - i * s.D;
      float o = acc[i * s.lds + d] * row_alpha[i];
      for (int j = 0; j < kTile; ++j) o += p[i * kScoreStride + j] * v[j * s.lds + d];
      acc[i * s.lds + d] = o;
    }
  }
  __syncthreads();
  float* out_head = out + b * s.T * s.ld_out() + h * s.D;
  for (int idx = threadIdx.x; idx < kTile * s.D; idx += blockDim.x) {
    const int i = idx / s.D, d = idx - i * s.D;
    const int64_t t = q0 + i;
    if (t < s.T) out_head[t * s.ld_out() + d] = acc[i * s.lds + d] / row_l[i];
  }
  if (threadIdx.x < kTile && q0 + threadIdx.x < s.T) {
    lse[bh * s.T + q0 + threadIdx.x] = row_m[threadIdx.x] + logf(row_l[threadIdx.x]);
  }
}

// dQ for one query tile: loops over the key tiles up to the diagonal.
__global__ void __launch_bounds__(kBlockThreads)
    attention_backward_dq_kernel(float* dqkv, const float* dout, const float* qkv, const float* out,
                                 const float* lse, Shape s) {
  extern __shared__ float smem[];
  float* q = smem;
  float* dO = q + kTile * s.lds;
  float* dq = dO + kTile * s.lds;
  float* k = dq + kTile * s.lds;
  float* v = k + kTile * s.lds;
  float* ds = v + kTile * s.lds;  // [kTile][kScoreStride]
  float* row_lse = ds + kTile * kScoreStride;
  float* row_delta = row_lse + kTile;

  const int64_t bh = blockIdx.x, b = bh / s.H, h = bh % s.H;
  const int q_tile = blockIdx.y;
  const int64_t q0 = int64_t{q_tile} * kTile;
  const int64_t qkv_offset = b * s.T * s.ld_qkv() + h * s.D;
  const int64_t out_offset = b * s.T * s.ld_out() + h * s.D;
  const float* k_head = qkv + qkv_offset + s.H * s.D;
  const float* v_head = k_head + s.H * s.D;

  load_tile(q, qkv + qkv_offset, q0, s, s.ld_qkv());
  load_tile(dO, dout + out_offset, q0, s, s.ld_out());
  zero_tile(dq, s);
  __syncthreads();
  load_row_stats(row_lse, row_delta, dO, out + out_offset, lse + bh * s.T, q0, s);
  for (int kt = 0; kt <= q_tile; ++kt) {
    const int64_t k0 = int64_t{kt} * kTile;
    __syncthreads();
    load_tile(k, k_head, k0, s, s.ld_qkv());
    load_tile(v, v_head, k0, s, s.ld_qkv());
    __syncthreads();
    for (int idx = threadIdx.x; idx < kTile * kTile; idx += blockDim.x) {
      const int i = idx / kTile, j = idx % kTile;
      const int64_t tq = q0 + i, tk = k0 + j;
      float g = 0.0f;
      if (tk <= tq && tq < s.T) {
        const float pij = expf(dot_rows(q + i * s.lds, k + j * s.lds, s.D) * s.scale - row_lse[i]);
        const float dp = dot_rows(dO + i * s.lds, v + j * s.lds, s.D);
        g = pij * (dp - row_delta[i]);
      }
      ds[i * kScoreStride + j] = g;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < kTile * s.D; idx += blockDim.x) {
      const int i = idx / s.D, d = idx - i * s.D;
      float a = dq[i * s.lds + d];
      for (int j = 0; j < kTile; ++j) a += ds[i * kScoreStride + j] * k[j * s.lds + d];
      dq[i * s.lds + d] = a;
    }
  }
  __syncthreads();
  float* dq_head = dqkv + qkv_offset;
  for (int idx = threadIdx.x; idx < kTile * s.D; idx += blockDim.x) {
    const int i = idx / s.D, d = idx - i * s.D;
    const int64_t t = q0 + i;
    if (t < s.T) dq_head[t * s.ld_qkv() + d] = dq[i * s.lds + d] * s.scale;
  }
}

// dK and dV for one key tile: loops over the query tiles from the diagonal to the end.
__global__ void __launch_bounds__(kBlockThreads)
    attention_backward_dkv_kernel(float* dqkv, const float* dout, const float* qkv,
                                  const float* out, const float* lse, Shape s) {
  extern __shared__ float smem[];
  float* k = smem;
  float* v = k + kTile * s.lds;
  float* dk = v + kTile * s.lds;
  float* dv = dk + kTile * s.lds;
  float* q = dv + kTile * s.lds;
  float* dO = q + kTile * s.lds;
  float* p = dO + kTile * s.lds;  // [kTile queries][kScoreStride keys]
  float* ds = p + kTile * kScoreStride;
  float* row_lse = ds + kTile * kScoreStride;
  float* row_delta = row_lse + kTile;

  const int64_t bh = blockIdx.x, b = bh / s.H, h = bh % s.H;
  const int k_tile = blockIdx.y;
  const int64_t k0 = int64_t{k_tile} * kTile;
  const int64_t qkv_offset = b * s.T * s.ld_qkv() + h * s.D;
  const int64_t out_offset = b * s.T * s.ld_out() + h * s.D;
  const float* q_head = qkv + qkv_offset;
  const float* k_head = q_head + s.H * s.D;
  const float* v_head = k_head + s.H * s.D;

  load_tile(k, k_head, k0, s, s.ld_qkv());
  load_tile(v, v_head, k0, s, s.ld_qkv());
  zero_tile(dk, s);
  zero_tile(dv, s);
  const int64_t q_tiles = (s.T + kTile - 1) / kTile;
  for (int64_t qt = k_tile; qt < q_tiles; ++qt) {
    const int64_t q0 = qt * kTile;
    __syncthreads();
    load_tile(q, q_head, q0, s, s.ld_qkv());
    load_tile(dO, dout + out_offset, q0, s, s.ld_out());
    __syncthreads();
    load_row_stats(row_lse, row_delta, dO, out + out_offset, lse + bh * s.T, q0, s);
    __syncthreads();
    for (int idx = threadIdx.x; idx < kTile * kTile; idx += blockDim.x) {
      const int i = idx / kTile, j = idx % kTile;
      const int64_t tq = q0 + i, tk = k0 + j;
      float pij = 0.0f, g = 0.0f;
      if (tk <= tq && tq < s.T) {
        pij = expf(dot_rows(q + i * s.lds, k + j * s.lds, s.D) * s.scale - row_lse[i]);
        g = pij * (dot_rows(dO + i * s.lds, v + j * s.lds, s.D) - row_delta[i]);
      }
      p[i * kScoreStride + j] = pij;
      ds[i * kScoreStride + j] = g;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < kTile * s.D; idx += blockDim.x) {
      const int j = idx / s.D, d = idx - j * s.D;
      float a_v = dv[j * s.lds + d], a_k = dk[j * s.lds + d];
      for (int i = 0; i < kTile; ++i) {
        a_v += p[i * kScoreStride + j] * dO[i * s.lds + d];
        a_k += ds[i * kScoreStride + j] * q[i * s.lds + d];
      }
      dv[j * s.lds + d] = a_v;
      dk[j * s.lds + d] = a_k;
    }
  }
  __syncthreads();
  float* dk_head = dqkv + qkv_offset + s.H * s.D;
  float* dv_head = dk_head + s.H * s.D;
  for (int idx = threadIdx.x; idx < kTile * s.D; idx += blockDim.x) {
    const int j = idx / s.D, d = idx - j * s.D;
    const int64_t t = k0 + j;
    if (t < s.T) {
      dk_head[t * s.ld_qkv() + d] = dk[j * s.lds + d] * s.scale;
      dv_head[t * s.ld_qkv() + d] = dv[j * s.lds + d];
    }
  }
}

// Shared memory of a kernel with `tiles` [kTile][lds] tiles, `score_tiles` score tiles and
// `row_arrays` per-row arrays.
size_t shared_bytes(int lds, int tiles, int score_tiles, int row_arrays) {
  return sizeof(float) * (static_cast<size_t>(tiles) * kTile * lds +
                          static_cast<size_t>(score_tiles) * kTile * kScoreStride +
                          static_cast<size_t>(row_arrays) * kTile);
}

// Kernels needing more than the default 48 KiB of dynamic shared memory must opt in (up to
// 227 KiB on Hopper). A host-side attribute: no synchronisation.
template <class Kernel>
void allow_shared(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) {
    TESSERA_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(bytes)));
  }
}

// Validates the sizes and returns the launch shape, or false when there is nothing to do.
bool make_shape(Shape& s, dim3& grid, int64_t B, int64_t T, int64_t H, int64_t D) {
  TESSERA_CHECK(B >= 0 && T >= 0 && H >= 0 && D >= 0, "attention: negative size B={} T={} H={} D={}",
                B, T, H, D);
  TESSERA_CHECK(D <= kAttentionMaxHeadDim, "attention: head size {} exceeds the CUDA kernel's {}",
                D, kAttentionMaxHeadDim);
  if (B == 0 || T == 0 || H == 0 || D == 0) return false;
  const int64_t tiles = (T + kTile - 1) / kTile;
  TESSERA_CHECK(tiles <= 65535 && B * H <= int64_t{0x7fffffff},
                "attention: T={} or B*H={} exceeds the CUDA grid", T, B * H);
  s = Shape{T, H, static_cast<int>(D), static_cast<int>(D | 1),
            1.0f / sqrtf(static_cast<float>(D))};
  grid = dim3(static_cast<unsigned int>(B * H), static_cast<unsigned int>(tiles));
  return true;
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t T, int64_t H,
                       int64_t D, cudaStream_t stream) {
  Shape s{};
  dim3 grid;
  if (!make_shape(s, grid, B, T, H, D)) return;
  const size_t bytes = shared_bytes(s.lds, 4, 1, 3);
  allow_shared(attention_forward_kernel, bytes);
  attention_forward_kernel<<<grid, kBlockThreads, bytes, stream>>>(out, lse, qkv, s);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, int64_t B, int64_t T, int64_t H, int64_t D,
                        cudaStream_t stream) {
  Shape s{};
  dim3 grid;
  if (!make_shape(s, grid, B, T, H, D)) return;
  const size_t dq_bytes = shared_bytes(s.lds, 5, 1, 2);
  allow_shared(attention_backward_dq_kernel, dq_bytes);
  attention_backward_dq_kernel<<<grid, kBlockThreads, dq_bytes, stream>>>(dqkv, dout, qkv, out,
                                                                          lse, s);
  TESSERA_CUDA_CHECK(cudaGetLastError());
  const size_t dkv_bytes = shared_bytes(s.lds, 6, 2, 2);
  allow_shared(attention_backward_dkv_kernel, dkv_bytes);
  attention_backward_dkv_kernel<<<grid, kBlockThreads, dkv_bytes, stream>>>(dqkv, dout, qkv, out,
                                                                            lse, s);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
