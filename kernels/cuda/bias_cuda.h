// CUDA bias broadcast and its gradient, the device twins of kernels/bias.h. Host launchers
// enqueue on the given stream and return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

// x[r, c] += bias[c] for every row.
void bias_forward(float* x, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);
// dbias[c] += sum_r dout[r, c] (deterministic: no atomics).
void bias_backward(float* dbias, const float* dout, int64_t rows, int64_t cols,
                   cudaStream_t stream);

}  // namespace tessera::kernels::cuda
