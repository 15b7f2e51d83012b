// CUDA ReLU, the device twin of kernels/relu.h. Host launchers enqueue on the given stream and
// return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

void relu_forward(float* out, const float* inp, int64_t n, cudaStream_t stream);
// dinp = dout where inp > 0, else 0 (written).
void relu_backward(float* dinp, const float* inp, const float* dout, int64_t n,
                   cudaStream_t stream);

}  // namespace tessera::kernels::cuda
