// Bias broadcast over rows and its gradient (column sums).
#pragma once

#include <cstdint>

#include "kernels/cast.h"

namespace tessera::kernels::cpu {

// x[r, c] += bias[c] for every row.
void bias_forward(float* x, const float* bias, int64_t rows, int64_t cols);
// dbias[c] += sum_r dout[r, c].
void bias_backward(float* dbias, const float* dout, int64_t rows, int64_t cols);
// The same sums (bit for bit), and dout rounded to `format` into dout_half in the same pass: the
// gradient of a Linear with bias feeds both its bias and its two 16-bit GEMMs.
void bias_backward(float* dbias, uint16_t* dout_half, Half format, const float* dout, int64_t rows, int64_t cols);

}  // namespace tessera::kernels::cpu
