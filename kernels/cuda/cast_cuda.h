// CUDA casts between float32 and the 16-bit formats for mixed precision. bf16 and fp16 buffers are
// uint16_t bit patterns (the runtime's DType::BF16 / F16 storage), so this header needs no CUDA
// headers. Host
// launchers enqueue on the given stream and return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

// Round to nearest even; infinities and NaNs are kept (NaNs stay NaN, payload not preserved).
void cast_f32_to_bf16(uint16_t* out, const float* inp, int64_t n, cudaStream_t stream);
// Exact.
void cast_bf16_to_f32(float* out, const uint16_t* inp, int64_t n, cudaStream_t stream);
// Round to nearest even; beyond fp16's range (65504) to infinity, below it to subnormals or zero.
void cast_f32_to_f16(uint16_t* out, const float* inp, int64_t n, cudaStream_t stream);
// Exact.
void cast_f16_to_f32(float* out, const uint16_t* inp, int64_t n, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
