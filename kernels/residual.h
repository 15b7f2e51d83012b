// Elementwise helpers: residual add, accumulation, scaling, sum of squares.
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// out = a + b (out may alias a or b).
void residual_forward(float* out, const float* a, const float* b, int64_t n);
// dst += src.
void accumulate(float* dst, const float* src, int64_t n);
// x *= s.
void scale(float* x, float s, int64_t n);

}  // namespace tessera::kernels::cpu
