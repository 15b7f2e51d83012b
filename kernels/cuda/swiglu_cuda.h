// CUDA SwiGLU, the device twin of kernels/swiglu.h.
// Host launchers enqueue on the given stream and return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n, cudaStream_t stream);
void swiglu_backward(float* dgate, float* dup, const float* gate, const float* up, const float* dout, int64_t n,
                     cudaStream_t stream);

}  // namespace tessera::kernels::cuda
