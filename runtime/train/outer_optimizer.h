// DiLoCo's outer optimizer: SGD with (Nesterov) momentum whose gradient is the replicas'
// averaged parameter change since the last sync (the "outer gradient" or pseudo-gradient,
// anchor - mean of the replicas' parameters). Same update as PyTorch's SGD, which the DiLoCo
// paper uses (Douillard et al., 2023: lr 0.7, momentum 0.9, Nesterov).
#pragma once

#include <cstdint>

namespace tessera {

struct OuterStepConfig {
  float lr = 0.7f;
  float momentum = 0.9f;
  bool nesterov = true;
};

// One outer step on n elements:  buf = momentum * buf + delta;
// step = nesterov ? delta + momentum * buf : buf;  anchor -= lr * step.
// With momentum 0 buf is not read or written (it may be null).
void outer_sgd_update(float* anchor, const float* delta, float* buf, int64_t n, const OuterStepConfig& config);

}  // namespace tessera
