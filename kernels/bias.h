// Bias broadcast over rows and its gradient (column sums).
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// x[r, c] += bias[c] for every row.
void bias_forward(float* x, const float* bias, int64_t rows, int64_t cols);
// dbias[c] += sum_r dout[r, c].
void bias_backward(float* dbias, const float* dout, int64_t rows, int64_t cols);

}  // namespace tessera::kernels::cpu
