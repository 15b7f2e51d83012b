// LayerNorm over the last dimension with learned weight and bias (eps = 1e-5, as PyTorch).
#pragma once

#include <cstdint>

#include "kernels/cast.h"

namespace tessera::kernels::cpu {

// out = (inp - mean) * rstd * weight + bias; mean and rstd ([rows]) are saved for backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t rows, int64_t cols, float eps = 1e-5f);
// The same, out written as 16-bit floats: each value the fp32 result above rounded once (the
// statistics stay fp32).
void layernorm_forward(uint16_t* out, Half format, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t rows, int64_t cols, float eps = 1e-5f);
// dinp written; dweight, dbias accumulated.
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        int64_t rows, int64_t cols);

}  // namespace tessera::kernels::cpu
