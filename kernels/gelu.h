// GELU, tanh approximation (GPT-2 / nanoGPT's "approximate='tanh'").
#pragma once

#include <cstdint>

#include "kernels/cast.h"

namespace tessera::kernels::cpu {

void gelu_forward(float* out, const float* inp, int64_t n);
// The same values written as 16-bit floats: each is the fp32 result above rounded once.
void gelu_forward(uint16_t* out, Half format, const float* inp, int64_t n);
// dinp = dout * gelu'(inp) (written).
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n);

}  // namespace tessera::kernels::cpu
