// CUDA grouped key/value packing, the device twin of kernels/gqa.h.
// Host launchers enqueue on the given stream and return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

void gqa_pack_forward(float* qkv, const float* q, const float* k, const float* v, int64_t rows, int64_t heads,
                      int64_t groups, int64_t head_dim, cudaStream_t stream);
void gqa_pack_backward(float* dq, float* dk, float* dv, const float* dqkv, int64_t rows, int64_t heads,
                       int64_t groups, int64_t head_dim, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
