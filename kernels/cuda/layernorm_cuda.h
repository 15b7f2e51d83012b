// CUDA LayerNorm over the last dimension, the device twin of kernels/layernorm.h (eps = 1e-5,
// biased variance, as PyTorch). Host launchers enqueue on the given stream and return without
// synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

// out = (inp - mean) * rstd * weight + bias; mean and rstd ([rows]) are saved for backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t rows, int64_t cols, cudaStream_t stream,
                       float eps = 1e-5f);
// dinp written (may alias dout); dweight, dbias accumulated (deterministic: no atomics).
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
