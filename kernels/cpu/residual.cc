// CPU elementwise helpers: residual add, accumulate, scale.
#include "kernels/residual.h"

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
  detail::parallel_elements(n, 1, [&](int64_t i0, int64_t i1) {
    detail::ArrayMap(out + i0, i1 - i0) =
        detail::ConstArrayMap(a + i0, i1 - i0) + detail::ConstArrayMap(b + i0, i1 - i0);
  });
}

void accumulate(float* dst, const float* src, int64_t n) {
  detail::parallel_elements(n, 1, [&](int64_t i0, int64_t i1) {
    detail::ArrayMap(dst + i0, i1 - i0) += detail::ConstArrayMap(src + i0, i1 - i0);
  });
}

void scale(float* x, float s, int64_t n) {
  detail::parallel_elements(
      n, 1, [&](int64_t i0, int64_t i1) { detail::ArrayMap(x + i0, i1 - i0) *= s; });
}

}  // namespace tessera::kernels::cpu
