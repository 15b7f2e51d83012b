// CUDA RMSNorm, the device twin of kernels/rmsnorm.h.
// Host launchers enqueue on the given stream and return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t rows, int64_t cols,
                     float eps, cudaStream_t stream);
// dinp written (may alias dout); dweight accumulated.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
