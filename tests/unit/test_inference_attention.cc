// The KV-cache attention kernel against the training attention kernel: for any split of a
// sequence into cached past and new rows, the new rows' outputs equal those rows of the
// full causal attention.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cached_attention.h"

using namespace tessera::kernels::cpu;

TEST_CASE("cached_attention_forward equals the rows of causal attention_forward", "[inference][kernel]") {
  const int64_t T = 13, H = 3, D = 5, A = H * D;
  std::vector<float> qkv(T * 3 * A);
  for (size_t i = 0; i < qkv.size(); ++i) qkv[i] = std::sin(0.37f * static_cast<float>(i)) * 2.0f;
  std::vector<float> full(T * A), probs(H * T * T);
  attention_forward(full.data(), probs.data(), qkv.data(), 1, T, H, D);
  // Keys and values as a cache holds them: [T, A] rows.
  std::vector<float> keys(T * A), values(T * A);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < A; ++c) {
      keys[t * A + c] = qkv[t * 3 * A + A + c];
      values[t * A + c] = qkv[t * 3 * A + 2 * A + c];
    }
  }
  for (const int64_t past : {0, 1, 6, 12}) {
    const int64_t n = T - past;
    // Output rows with a stride wider than A, to check the leading dimensions.
    const int64_t ldo = A + 2;
    std::vector<float> out(n * ldo, -7.0f);
    cached_attention_forward(out.data(), ldo, qkv.data() + past * 3 * A, 3 * A, keys.data(), values.data(), A, n,
                             past, H, D);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < A; ++c) {
        INFO("past " << past << " row " << r << " column " << c);
        CHECK(out[r * ldo + c] == Approx(full[(past + r) * A + c]).epsilon(1e-5).margin(1e-6));
      }
      CHECK(out[r * ldo + A] == -7.0f);
    }
  }
}
