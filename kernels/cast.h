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

// The 16-bit formats, for kernels that write their fp32 results rounded once, in the same pass
// (e.g. a LayerNorm or GELU output that only feeds a bf16 GEMM) instead of an fp32 buffer and a cast.
enum class Half { BF16, F16 };
// cast_f32_to_bf16 or cast_f32_to_f16.
void cast_f32_to_half(Half format, uint16_t* out, const float* inp, int64_t n);
// x[i] = x[i] rounded to `format` and widened back: the value a 16-bit product would read.
void round_to_half(Half format, float* x, int64_t n);

}  // namespace tessera::kernels::cpu
