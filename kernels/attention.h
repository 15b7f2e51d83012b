// Causal multi-head self-attention core: softmax(Q K^T / sqrt(d)) V with a causal mask.
// qkv is [B, T, 3 * H * D] laid out as (q for all heads | k for all heads | v for all heads),
// each head contiguous, as nanoGPT's c_attn output. out is [B, T, H * D].
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// probs [B, H, T, T] saves the softmax for backward (entries above the diagonal are 0).
void attention_forward(float* out, float* probs, const float* qkv, int64_t B, int64_t T, int64_t H,
                       int64_t D);
// dqkv written from dout, using the saved qkv and probs.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs,
                        int64_t B, int64_t T, int64_t H, int64_t D);

}  // namespace tessera::kernels::cpu
