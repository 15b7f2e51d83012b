// CUDA elementwise helpers, the device twins of kernels/residual.h: residual add, accumulation,
// scaling. Host launchers enqueue on the given stream and return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

// out = a + b (out may alias a or b).
void residual_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream);
// dst += src.
void accumulate(float* dst, const float* src, int64_t n, cudaStream_t stream);
// x *= s.
void scale(float* x, float s, int64_t n, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
