// CPU rotary position embedding: the forward rotation and its transpose for backward.
#include "kernels/rope.h"

#include <cmath>

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {
namespace {

// sign = +1 rotates by +angle (forward), -1 by -angle (backward: R^T = R(-angle)).
void rotate(float* out, const float* inp, const float* cos_table, const float* sin_table, int64_t rows,
            int64_t seq_len, int64_t heads, int64_t head_dim, float sign) {
  const int64_t half = head_dim / 2, width = heads * head_dim;
  detail::parallel_ranges(
      rows, detail::threads_for(rows * width * 3),
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const float* c = cos_table + (r % seq_len) * half;
          const float* s = sin_table + (r % seq_len) * half;
          for (int64_t h = 0; h < heads; ++h) {
            const float* x = inp + r * width + h * head_dim;
            float* y = out + r * width + h * head_dim;
            for (int64_t i = 0; i < half; ++i) {
              const float a = x[i], b = x[i + half], si = sign * s[i];
              y[i] = a * c[i] - b * si;
              y[i + half] = b * c[i] + a * si;
            }
          }
        }
      },
      1);
}

}  // namespace

void rope_tables(float* cos_table, float* sin_table, int64_t seq_len, int64_t head_dim, float base) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    // transformers: inv_freq = 1 / base ** (arange(0, D, 2) / D) and freqs = pos * inv_freq, both
    // in float32; rounding the same way keeps the angles (up to pos * 1e-7) identical.
    const float inv_freq = static_cast<float>(
        1.0 / std::pow(static_cast<double>(base), static_cast<double>(static_cast<float>(2 * i) /
                                                                      static_cast<float>(head_dim))));
    for (int64_t t = 0; t < seq_len; ++t) {
      const float angle = static_cast<float>(t) * inv_freq;
      cos_table[t * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin_table[t * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
}

void rope_forward(float* out, const float* inp, const float* cos_table, const float* sin_table,
                  int64_t rows, int64_t seq_len, int64_t heads, int64_t head_dim) {
  rotate(out, inp, cos_table, sin_table, rows, seq_len, heads, head_dim, 1.0f);
}

void rope_backward(float* dinp, const float* dout, const float* cos_table, const float* sin_table,
                   int64_t rows, int64_t seq_len, int64_t heads, int64_t head_dim) {
  rotate(dinp, dout, cos_table, sin_table, rows, seq_len, heads, head_dim, -1.0f);
}

}  // namespace tessera::kernels::cpu
