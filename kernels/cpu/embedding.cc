// CPU token (vocabulary-sharded) and position embeddings.
#include "kernels/embedding.h"

#include <algorithm>

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {

using detail::ArrayMap;
using detail::ConstArrayMap;

void token_embedding_forward(float* out, const int32_t* tokens, const float* wte, int64_t rows,
                             int64_t C, int64_t vocab_start, int64_t vocab_local) {
  detail::parallel_ranges(
      rows, detail::threads_for(rows * C),
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t t = tokens[r] - vocab_start;
          float* dst = out + r * C;
          if (t >= 0 && t < vocab_local) {
            std::copy_n(wte + t * C, C, dst);
          } else {
            std::fill_n(dst, C, 0.0f);
          }
        }
      },
      1);
}

// Rows may repeat a token, so threads split the vocabulary rather than the rows: each owns a
// range of dwte rows and scans all tokens for its own. No two threads write the same row (or,
// but at one range boundary, the same cache line), and each row accumulates its tokens in row
// order whatever the thread count.
void token_embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t rows,
                              int64_t C, int64_t vocab_start, int64_t vocab_local) {
  detail::parallel_ranges(
      vocab_local, detail::threads_for(rows * C),
      [&](int64_t v0, int64_t v1) {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t t = tokens[r] - vocab_start;
          if (t >= v0 && t < v1) ArrayMap(dwte + t * C, C) += ConstArrayMap(dout + r * C, C);
        }
      },
      1);
}

void position_embedding_forward(float* x, const float* wpe, int64_t B, int64_t T, int64_t C) {
  detail::parallel_ranges(
      B * T, detail::threads_for(B * T * C),
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          ArrayMap(x + r * C, C) += ConstArrayMap(wpe + (r % T) * C, C);
        }
      },
      1);
}

void position_embedding_backward(float* dwpe, const float* dout, int64_t B, int64_t T, int64_t C) {
  detail::parallel_ranges(
      T, detail::threads_for(B * T * C),
      [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          ArrayMap acc(dwpe + t * C, C);
          for (int64_t b = 0; b < B; ++b) acc += ConstArrayMap(dout + (b * T + t) * C, C);
        }
      },
      1);
}

}  // namespace tessera::kernels::cpu
