// Global-norm gradient clipping: the norm is sqrt of the sum of squares over all
// gradients (on all ranks: the caller all-reduces the partial sums).
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// sum of x[i]^2, accumulated in double.
double sum_squares(const float* x, int64_t n);
// The factor to multiply gradients by: min(1, max_norm / (norm + 1e-6)), as PyTorch's
// clip_grad_norm_. max_norm <= 0 disables clipping (returns 1).
float clip_coefficient(double total_norm, float max_norm);

}  // namespace tessera::kernels::cpu
