// CPU causal self-attention: per (batch, head) Eigen products on strided views of qkv,
// with the (batch, head) pairs spread over OpenMP threads.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

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

// Each (b, h) pair costs ~2 T^2 D multiply-adds plus T^2 exponentials.
int threads_for_attention(int64_t B, int64_t T, int64_t H, int64_t D) {
  return detail::threads_for(B * H * T * T * (2 * D + 8));
}

}  // namespace

void attention_forward(float* out, float* probs, const float* qkv, int64_t B, int64_t T, int64_t H,
                       int64_t D) {
  const int64_t ld_qkv = 3 * H * D, ld_out = H * D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t pairs = B * H;
#pragma omp parallel for schedule(static) num_threads(threads_for_attention(B, T, H, D))
  for (int64_t bh = 0; bh < pairs; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const float* q = qkv + q_offset(b, h, T, H, D);
    auto p = mat(probs + bh * T * T, T, T, T);
    p.noalias() = mat(q, T, D, ld_qkv) * mat(q + H * D, T, D, ld_qkv).transpose();
    for (int64_t i = 0; i < T; ++i) {
      // Row i attends to positions 0..i; subtracting the row max keeps exp() in range. The
      // exp runs over the row rounded up to whole SIMD vectors (Eigen evaluates leftover
      // elements one scalar exp at a time); the extra entries are finite masked scores, zeroed
      // before the sum.
      float* row = p.data() + i * T;
      const float row_max = detail::ConstArrayMap(row, i + 1).maxCoeff();
      ArrayMap padded(row, std::min(T, (i + kSimdFloats) / kSimdFloats * kSimdFloats));
      padded = ((padded - row_max) * scale).exp();
      std::fill(row + i + 1, row + T, 0.0f);
      padded *= 1.0f / padded.sum();
    }
    mat(out + b * T * ld_out + h * D, T, D, ld_out).noalias() =
        p.triangularView<Eigen::Lower>() * mat(q + 2 * H * D, T, D, ld_qkv);
  }
}

// With S = scale Q K^T, P = softmax(S), O = P V:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),
//   dQ = scale dS K,  dK = scale dS^T Q.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs,
                        int64_t B, int64_t T, int64_t H, int64_t D) {
  const int64_t ld_qkv = 3 * H * D, ld_out = H * D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t pairs = B * H;
#pragma omp parallel num_threads(threads_for_attention(B, T, H, D))
  {
    detail::RowMajorMatrix ds(T, T);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < pairs; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const int64_t off = q_offset(b, h, T, H, D);
      const auto p = mat(probs + bh * T * T, T, T, T);
      const auto q = mat(qkv + off, T, D, ld_qkv), k = mat(qkv + off + H * D, T, D, ld_qkv),
                 v = mat(qkv + off + 2 * H * D, T, D, ld_qkv);
      const auto d_o = mat(dout + b * T * ld_out + h * D, T, D, ld_out);
      auto dq = mat(dqkv + off, T, D, ld_qkv), dk = mat(dqkv + off + H * D, T, D, ld_qkv),
           dvv = mat(dqkv + off + 2 * H * D, T, D, ld_qkv);

      dvv.noalias() = p.transpose().triangularView<Eigen::Upper>() * d_o;
      ds.noalias() = d_o * v.transpose();
      // Full rows: P is exactly 0 above the diagonal, so those dS entries come out 0 as well.
      for (int64_t i = 0; i < T; ++i) {
        ArrayMap dsr(ds.data() + i * T, T);
        const detail::ConstArrayMap pr(p.data() + i * T, T);
        dsr = pr * (dsr - (dsr * pr).sum()) * scale;
      }
      dq.noalias() = ds.triangularView<Eigen::Lower>() * k;
      dk.noalias() = ds.transpose().triangularView<Eigen::Upper>() * q;
    }
  }
}

}  // namespace tessera::kernels::cpu
