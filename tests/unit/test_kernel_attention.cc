// Tests of the CPU causal self-attention kernels against a double-precision reference.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>

#include "kernels/attention.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

namespace {

// nanoGPT's attention: q, k, v split from qkv [B, T, 3 H D], S = q k^T / sqrt(D) masked above
// the diagonal, softmax, out = P v as [B, T, H D]. Optionally returns P [B, H, T, T].
std::vector<double> attention_reference(const std::vector<double>& qkv, int64_t B, int64_t T,
                                        int64_t H, int64_t D,
                                        std::vector<double>* probs = nullptr) {
  const int64_t C3 = 3 * H * D;
  std::vector<double> out(B * T * H * D, 0.0);
  if (probs) probs->assign(B * H * T * T, 0.0);
  std::vector<double> p(T);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        const double* q = &qkv[(b * T + i) * C3 + h * D];
        double mx = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j <= i; ++j) {
          const double* k = &qkv[(b * T + j) * C3 + H * D + h * D];
          double s = 0.0;
          for (int64_t d = 0; d < D; ++d) s += q[d] * k[d];
          p[j] = s / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, p[j]);
        }
        for (int64_t j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int64_t j = 0; j <= i; ++j) {
          p[j] /= sum;
          if (probs) (*probs)[((b * H + h) * T + i) * T + j] = p[j];
          const double* v = &qkv[(b * T + j) * C3 + 2 * H * D + h * D];
          for (int64_t d = 0; d < D; ++d) out[(b * T + i) * H * D + h * D + d] += p[j] * v[d];
        }
      }
    }
  }
  return out;
}

}  // namespace

// Shapes (B, T, H, D): a single token, odd sizes, one large enough for the OpenMP path, and one
// over several row blocks.
// qkv values in [-2, 2] give peaked enough softmaxes for the mask and max subtraction to matter.
TEST_CASE("kernel attention forward and backward match a double reference",
          "[kernels][attention]") {
  // 150 = 2 * 64 + 22: two whole row blocks and a partial one.
  const std::vector<std::array<int64_t, 4>> shapes = {
      {1, 1, 1, 1}, {2, 5, 2, 3}, {3, 7, 3, 4}, {2, 33, 3, 8}, {1, 150, 2, 4}};
  for (auto [B, T, H, D] : shapes) {
    CAPTURE(B, T, H, D);
    const std::vector<float> qkv = random_floats(B * T * 3 * H * D, 40, -2.0f, 2.0f);
    const std::vector<float> r = random_floats(B * T * H * D, 41);
    std::vector<float> out(B * T * H * D), probs(B * H * T * T, NAN),
        dqkv(qkv.size(), NAN);
    attention_forward(out.data(), probs.data(), qkv.data(), B, T, H, D);
    attention_backward(dqkv.data(), r.data(), qkv.data(), probs.data(), B, T, H, D);

    std::vector<double> qkvd = to_double(qkv), probs_ref;
    const std::vector<double> rd = to_double(r);
    const std::vector<double> out_ref = attention_reference(qkvd, B, T, H, D, &probs_ref);
    // Probabilities and outputs are O(1) results of D-term dot products, an exp and a T-term
    // normalisation: a few float roundings each, ~1e-6. Masked entries must be exactly 0.
    check_close("attention probs", probs, probs_ref, {1e-5, 1e-6});
    check_close("attention forward", out, out_ref, {1e-5, 1e-5});
    int64_t masked_nonzero = 0;
    for (int64_t bh = 0; bh < B * H; ++bh) {
      for (int64_t i = 0; i < T; ++i) {
        for (int64_t j = i + 1; j < T; ++j) masked_nonzero += probs[(bh * T + i) * T + j] != 0.0f;
      }
    }
    CHECK(masked_nonzero == 0);
    auto loss = [&] { return dot(attention_reference(qkvd, B, T, H, D), rd); };
    check_gradient("attention dqkv", qkvd, loss, dqkv, {1e-4, 1e-5}, 96);
  }
}
