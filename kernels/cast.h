// Casts between float32 and the 16-bit float formats of mixed precision. 16-bit buffers are
// uint16_t bit patterns (the runtime's BF16/F16 storage), so callers need no compiler types.
// The CUDA twins live in kernels/cuda/cast_cuda.h.
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// Round to nearest even; infinities and NaNs are kept (a NaN stays a NaN).
void cast_f32_to_bf16(uint16_t* out, const float* inp, int64_t n);
// Exact.
void cast_bf16_to_f32(float* out, const uint16_t* inp, int64_t n);
// IEEE binary16, round to nearest even; values beyond 65504 become infinities (which the fp16
// loss scaler detects), values below its subnormal range flush to signed zero.
void cast_f32_to_f16(uint16_t* out, const float* inp, int64_t n);
// Exact.
void cast_f16_to_f32(float* out, const uint16_t* inp, int64_t n);

}  // namespace tessera::kernels::cpu
