// AdamW with decoupled weight decay (Loshchilov & Hutter), PyTorch's torch.optim.AdamW update.
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// step is 1-based (bias correction). param -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * param),
// with the decay applied to the parameter before the Adam update, as PyTorch does. The
// gradient used is grad * grad_scale, rounded as a separate multiply would round it: global-norm
// clipping folded into the update's one pass instead of a pass of its own over the gradients.
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale = 1.0f);

}  // namespace tessera::kernels::cpu
