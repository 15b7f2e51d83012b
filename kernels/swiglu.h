// SwiGLU, the gated MLP activation of Llama: out = silu(gate) * up, silu(x) = x sigmoid(x).
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// n elements; gate and up are the outputs of the two column-parallel projections.
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
// dgate and dup written (not accumulated).
void swiglu_backward(float* dgate, float* dup, const float* gate, const float* up, const float* dout,
                     int64_t n);

}  // namespace tessera::kernels::cpu
