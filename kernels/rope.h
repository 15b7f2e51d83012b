// Rotary position embedding (RoPE), in Llama's "rotate half" convention: within each head of
// width D, element i < D/2 pairs with element i + D/2 and the pair is rotated by the angle
// pos * base^(-2i/D), pos being the row's position in its sequence (row % seq_len).
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// Rotary angles as Hugging Face computes them (inverse frequencies and their product with
// the position rounded to float), cos and sin written as [seq_len, head_dim / 2] tables.
void rope_tables(float* cos_table, float* sin_table, int64_t seq_len, int64_t head_dim, float base);

// x: [rows, heads * head_dim] with rows = batch * seq_len; rotated in place (out may alias inp).
void rope_forward(float* out, const float* inp, const float* cos_table, const float* sin_table,
                  int64_t rows, int64_t seq_len, int64_t heads, int64_t head_dim);
// The inverse rotation (the transpose of the forward's), which is its gradient; dinp may alias dout.
void rope_backward(float* dinp, const float* dout, const float* cos_table, const float* sin_table,
                   int64_t rows, int64_t seq_len, int64_t heads, int64_t head_dim);

}  // namespace tessera::kernels::cpu
