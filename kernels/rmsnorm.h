// RMSNorm over the last dimension with a learned weight and no bias (Llama's norm):
// y = x / sqrt(mean(x^2) + eps) * weight.
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// out = inp * rstd * weight; rstd ([rows]) is saved for backward. out may alias inp.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t rows,
                     int64_t cols, float eps);
// dinp written; dweight accumulated.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int64_t rows, int64_t cols);

}  // namespace tessera::kernels::cpu
