// CPU grouped-query packing of q, k, v into the attention kernel's q | k | v rows, and the
// gradient's unpacking (a sum over the heads that share a key/value group).
#include "kernels/gqa.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {

void gqa_pack_forward(float* qkv, const float* q, const float* k, const float* v, int64_t rows,
                      int64_t heads, int64_t groups, int64_t head_dim) {
  const int64_t A = heads * head_dim, Kw = groups * head_dim, per_group = heads / groups;
  const size_t head_bytes = sizeof(float) * head_dim;
  detail::parallel_ranges(
      rows, detail::threads_for(rows * A * 3),
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          float* out = qkv + r * 3 * A;
          std::memcpy(out, q + r * A, sizeof(float) * A);
          for (int64_t h = 0; h < heads; ++h) {
            const int64_t g = h / per_group;
            std::memcpy(out + A + h * head_dim, k + r * Kw + g * head_dim, head_bytes);
            std::memcpy(out + 2 * A + h * head_dim, v + r * Kw + g * head_dim, head_bytes);
          }
        }
      },
      1);
}

void gqa_pack_backward(float* dq, float* dk, float* dv, const float* dqkv, int64_t rows, int64_t heads,
                       int64_t groups, int64_t head_dim) {
  const int64_t A = heads * head_dim, Kw = groups * head_dim, per_group = heads / groups;
  detail::parallel_ranges(
      rows, detail::threads_for(rows * A * 3),
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const float* in = dqkv + r * 3 * A;
          std::memcpy(dq + r * A, in, sizeof(float) * A);
          std::fill(dk + r * Kw, dk + (r + 1) * Kw, 0.0f);
          std::fill(dv + r * Kw, dv + (r + 1) * Kw, 0.0f);
          for (int64_t h = 0; h < heads; ++h) {
            float* gk = dk + r * Kw + (h / per_group) * head_dim;
            float* gv = dv + r * Kw + (h / per_group) * head_dim;
            const float* hk = in + A + h * head_dim;
            const float* hv = in + 2 * A + h * head_dim;
            for (int64_t d = 0; d < head_dim; ++d) {
              gk[d] += hk[d];
              gv[d] += hv[d];
            }
          }
        }
      },
      1);
}

}  // namespace tessera::kernels::cpu
