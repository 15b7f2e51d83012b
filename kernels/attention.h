// Causal multi-head self-attention core: softmax(Q K^T / sqrt(d)) V with a causal mask.
// qkv is [B, T, 3 * H * D] laid out as (q for all heads | k for all heads | v for all heads),
// each head contiguous, as nanoGPT's c_attn output. out is [B, T, H * D].
//
// The products run over blocks of query rows against only the keys up to the block's last row,
// so the masked upper triangle is neither multiplied nor exponentiated (about half the work of
// the full T x T square at long sequences).
#pragma once

#include <cstdint>
#include <optional>

#include "kernels/cast.h"

namespace tessera::kernels::cpu {

// probs [B, H, T, T] saves the softmax for backward (entries above the diagonal are 0).
// `rounding`: the 16-bit format whose products a mixed-precision caller asks for on a CPU that
// cannot run them. The probabilities are rounded to it before the P V product (and saved so);
// the caller rounds q, k, v itself (they are its input).
void attention_forward(float* out, float* probs, const float* qkv, int64_t B, int64_t T, int64_t H, int64_t D,
                       std::optional<Half> rounding = std::nullopt);
// dqkv written from dout, using the saved qkv and probs. With `rounding`, the products' other
// inputs (dout and the score gradient) are rounded to that format as well.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, int64_t B, int64_t T,
                        int64_t H, int64_t D, std::optional<Half> rounding = std::nullopt);

}  // namespace tessera::kernels::cpu
