// CPU attention against a KV cache: per head one [n, L] score block (L = past + n), with the
// heads spread over OpenMP threads when the work pays for the fork.
#include "kernels/cached_attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {

using detail::mat;

void cached_attention_forward(float* out, int64_t ldo, const float* q, int64_t ldq, const float* k,
                              const float* v, int64_t ldkv, int64_t n, int64_t past, int64_t H,
                              int64_t D) {
  const int64_t L = past + n;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int threads = detail::threads_for(H * n * L * (2 * D + 8));
#pragma omp parallel num_threads(threads)
  {
    detail::RowMajorMatrix p(n, L);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      p.noalias() = mat(q + h * D, n, D, ldq) * mat(k + h * D, L, D, ldkv).transpose();
      for (int64_t i = 0; i < n; ++i) {
        const int64_t valid = past + i + 1;
        float* row = p.data() + i * L;
        detail::ArrayMap r(row, valid);
        const float row_max = r.maxCoeff();
        r = ((r - row_max) * scale).exp();
        r *= 1.0f / r.sum();
        std::fill(row + valid, row + L, 0.0f);
      }
      mat(out + h * D, n, D, ldo).noalias() = p * mat(v + h * D, L, D, ldkv);
    }
  }
}

}  // namespace tessera::kernels::cpu
