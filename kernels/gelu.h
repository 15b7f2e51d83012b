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
// gelu_backward of a [rows, cols] block whose result is a Linear's output gradient: it feeds the
// bias (dbias += column sums) and, rounded to 16 bits, the Linear's two GEMMs. One pass that
// never writes the fp32 dinp; the sums run in the order of kernels/bias.h's bias_backward, and
// when cols is a multiple of 16 every value equals gelu_backward's rounded once.
void gelu_backward_bias(float* dbias, uint16_t* dinp_half, Half format, const float* inp, const float* dout,
                        int64_t rows, int64_t cols);

}  // namespace tessera::kernels::cpu
