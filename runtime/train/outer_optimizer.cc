// The outer Nesterov SGD step of DiLoCo.
#include "runtime/train/outer_optimizer.h"

namespace tessera {

void outer_sgd_update(float* anchor, const float* delta, float* buf, int64_t n, const OuterStepConfig& c) {
  if (c.momentum == 0.f) {
    for (int64_t i = 0; i < n; ++i) anchor[i] -= c.lr * delta[i];
    return;
  }
  // A zero-initialised buffer gives PyTorch's first step (buf = delta) without a special case.
  for (int64_t i = 0; i < n; ++i) {
    buf[i] = c.momentum * buf[i] + delta[i];
    const float step = c.nesterov ? delta[i] + c.momentum * buf[i] : buf[i];
    anchor[i] -= c.lr * step;
  }
}

}  // namespace tessera
