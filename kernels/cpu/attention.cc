// CPU causal self-attention: per (batch, head) Eigen products on strided views of qkv, over
// blocks of query rows against only the keys they see, with the (batch, head) pairs spread over
// OpenMP threads.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {
namespace {

using detail::ArrayMap;
using detail::mat;

// Offset of head h's q block of batch b in qkv; its k and v blocks follow at +H*D and +2*H*D.
// Each block is a [T, D] view with row stride 3*H*D.
int64_t q_offset(int64_t b, int64_t h, int64_t T, int64_t H, int64_t D) {
  return b * T * 3 * H * D + h * D;
}

// Floats in one AVX-512 vector.
constexpr int64_t kSimdFloats = 16;

// Query rows per block. Row block [i0, i0 + n) multiplies against keys [0, i0 + n): the work
// above the diagonal that remains is the upper half of each n x n diagonal block, a fraction
// ~n / T of the full square. Smaller blocks waste less but run shorter, less efficient GEMMs.
constexpr int64_t kRowBlock = 64;

// Each (b, h) pair costs ~2 T^2 D multiply-adds plus T^2 exponentials.
int threads_for_attention(int64_t B, int64_t T, int64_t H, int64_t D) {
  return detail::threads_for(B * H * T * T * (2 * D + 8));
}

// Rows i0..i0+n of one head's probabilities, whose row stride is T: scale * s -> the causal
// softmax over keys 0..i (row r is query i = i0 + r), 0 beyond.
void causal_softmax_rows(float* rows, int64_t i0, int64_t n, int64_t T, float scale, std::optional<Half> rounding) {
  const int64_t keys = i0 + n;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t i = i0 + r;
    float* row = rows + r * T;
    // Subtracting the row max keeps exp() in range. The exp runs over the row rounded up to
    // whole SIMD vectors (Eigen evaluates leftover elements one scalar exp at a time); the
    // extra entries are finite masked scores of this block, zeroed before the sum.
    const float row_max = detail::ConstArrayMap(row, i + 1).maxCoeff();
    ArrayMap padded(row, std::min(keys, (i + kSimdFloats) / kSimdFloats * kSimdFloats));
    padded = ((padded - row_max) * scale).exp();
    std::fill(row + i + 1, row + T, 0.0f);
    padded *= 1.0f / padded.sum();
    if (rounding) round_to_half(*rounding, row, i + 1);
  }
}

}  // namespace

void attention_forward(float* out, float* probs, const float* qkv, int64_t B, int64_t T, int64_t H, int64_t D,
                       std::optional<Half> rounding) {
  const int64_t ld_qkv = 3 * H * D, ld_out = H * D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t pairs = B * H;
#pragma omp parallel for schedule(static) num_threads(threads_for_attention(B, T, H, D))
  for (int64_t bh = 0; bh < pairs; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const float* q = qkv + q_offset(b, h, T, H, D);
    const float *k = q + H * D, *v = q + 2 * H * D;
    for (int64_t i0 = 0; i0 < T; i0 += kRowBlock) {
      const int64_t n = std::min(kRowBlock, T - i0), keys = i0 + n;
      auto s = mat(probs + (bh * T + i0) * T, n, keys, T);
      s.noalias() = mat(q + i0 * ld_qkv, n, D, ld_qkv) * mat(k, keys, D, ld_qkv).transpose();
      causal_softmax_rows(s.data(), i0, n, T, scale, rounding);
      mat(out + (b * T + i0) * ld_out + h * D, n, D, ld_out).noalias() = s * mat(v, keys, D, ld_qkv);
    }
  }
}

// With S = scale Q K^T, P = softmax(S), O = P V:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),
//   dQ = scale dS K,  dK = scale dS^T Q.
// Per row block: its dS rows need only its own P and dP rows, and add its share to dK and dV of
// the keys it saw.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, int64_t B, int64_t T,
                        int64_t H, int64_t D, std::optional<Half> rounding) {
  const int64_t ld_qkv = 3 * H * D, ld_out = H * D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t pairs = B * H;
#pragma omp parallel num_threads(threads_for_attention(B, T, H, D))
  {
    std::vector<float> ds(static_cast<size_t>(std::min(kRowBlock, T) * T));
    std::vector<float> d_o_rounded(rounding ? static_cast<size_t>(T * D) : 0);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < pairs; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const int64_t off = q_offset(b, h, T, H, D);
      const float *q = qkv + off, *k = q + H * D, *v = q + 2 * H * D;
      float *dq = dqkv + off, *dk = dq + H * D, *dv = dq + 2 * H * D;
      const float* d_o = dout + b * T * ld_out + h * D;
      int64_t ld_do = ld_out;
      if (rounding) {  // the rounded dO, dense [T, D]
        mat(d_o_rounded.data(), T, D, D) = mat(d_o, T, D, ld_out);
        round_to_half(*rounding, d_o_rounded.data(), T * D);
        d_o = d_o_rounded.data(), ld_do = D;
      }
      mat(dk, T, D, ld_qkv).setZero();
      mat(dv, T, D, ld_qkv).setZero();
      for (int64_t i0 = 0; i0 < T; i0 += kRowBlock) {
        const int64_t n = std::min(kRowBlock, T - i0), keys = i0 + n;
        const auto p = mat(probs + (bh * T + i0) * T, n, keys, T);
        const auto d_ob = mat(d_o + i0 * ld_do, n, D, ld_do);
        mat(dv, keys, D, ld_qkv).noalias() += p.transpose() * d_ob;
        auto dsb = mat(ds.data(), n, keys, keys);
        dsb.noalias() = d_ob * mat(v, keys, D, ld_qkv).transpose();
        // Whole rows of the block: P is exactly 0 above the diagonal, so dS comes out 0 there.
        for (int64_t r = 0; r < n; ++r) {
          ArrayMap dsr(dsb.data() + r * keys, keys);
          const detail::ConstArrayMap pr(p.data() + r * T, keys);
          dsr = pr * (dsr - (dsr * pr).sum()) * scale;
        }
        if (rounding) round_to_half(*rounding, dsb.data(), n * keys);
        mat(dq + i0 * ld_qkv, n, D, ld_qkv).noalias() = dsb * mat(k, keys, D, ld_qkv);
        mat(dk, keys, D, ld_qkv).noalias() += dsb.transpose() * mat(q + i0 * ld_qkv, n, D, ld_qkv);
      }
    }
  }
}

}  // namespace tessera::kernels::cpu
