// CUDA rotary position embedding, the device twin of kernels/rope.h. The cos/sin tables
// come from kernels::cpu::rope_tables, copied to the device once.
// Host launchers enqueue on the given stream and return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

void rope_forward(float* out, const float* inp, const float* cos_table, const float* sin_table, int64_t rows,
                  int64_t seq_len, int64_t heads, int64_t head_dim, cudaStream_t stream);
void rope_backward(float* dinp, const float* dout, const float* cos_table, const float* sin_table, int64_t rows,
                   int64_t seq_len, int64_t heads, int64_t head_dim, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
