// CPU AdamW step, the same arithmetic as torch.optim.AdamW's single-tensor path.
#include "kernels/adamw.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/common.h"
#include "core/error.h"

namespace tessera::kernels::cpu {

// PyTorch computes the bias corrections in double on the host and applies them as float
// scalars: m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g^2;
// p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), after p *= 1 - lr wd.
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale) {
  TESSERA_CHECK(step >= 1, "adamw_update: step is 1-based, got {}", step);
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  const float step_size = static_cast<float>(lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  const float one_minus_b1 = static_cast<float>(1.0 - beta1);
  const float one_minus_b2 = static_cast<float>(1.0 - beta2);
  // torch.lerp's two forms, chosen by the weight as it does, round differently.
  const bool lerp_from_start = one_minus_b1 < 0.5f;
  // Eigen array expressions vectorise sqrt (a plain loop would not: std::sqrt sets errno);
  // blocks of 1024 keep the passes over the scaled gradient, m, v and param in L1.
  constexpr int64_t kBlock = 1024;
  detail::parallel_elements(n, 12, [&](int64_t b, int64_t e) {
    float scaled[kBlock];
    for (int64_t i = b; i < e; i += kBlock) {
      const int64_t len = std::min(kBlock, e - i);
      detail::ArrayMap g(scaled, len);
      g = detail::ConstArrayMap(grad + i, len) * grad_scale;
      detail::ArrayMap mi(m + i, len), vi(v + i, len), pi(param + i, len);
      if (lerp_from_start) {
        mi += one_minus_b1 * (g - mi);
      } else {
        mi = g - (g - mi) * (1.0f - one_minus_b1);
      }
      vi = vi * beta2 + one_minus_b2 * g * g;
      pi = pi * decay - step_size * (mi / (vi.sqrt() / bc2_sqrt + eps));
    }
  });
}

}  // namespace tessera::kernels::cpu
