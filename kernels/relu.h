// ReLU for the MLP model.
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

void relu_forward(float* out, const float* inp, int64_t n);
// dinp = dout where inp > 0, else 0 (written).
void relu_backward(float* dinp, const float* inp, const float* dout, int64_t n);

}  // namespace tessera::kernels::cpu
