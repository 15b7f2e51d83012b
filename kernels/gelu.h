// GELU, tanh approximation (GPT-2 / nanoGPT's "approximate='tanh'").
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

void gelu_forward(float* out, const float* inp, int64_t n);
// dinp = dout * gelu'(inp) (written).
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n);

}  // namespace tessera::kernels::cpu
