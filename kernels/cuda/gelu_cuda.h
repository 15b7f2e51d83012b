// CUDA GELU (tanh approximation), the device twin of kernels/gelu.h. Host launchers enqueue
// on the given stream and return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

void gelu_forward(float* out, const float* inp, int64_t n, cudaStream_t stream);
// dinp = dout * gelu'(inp) (written).
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n,
                   cudaStream_t stream);

}  // namespace tessera::kernels::cuda
