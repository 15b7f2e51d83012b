// Causal attention of a few new queries against cached keys and values: the rows
// [past, past + n) of attention.h's causal attention, for decoding with a KV cache.
// Heads are contiguous D-wide column blocks of H * D wide rows, as in attention.h.
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// q: [n, H * D] (row stride ldq), the queries of positions past .. past + n - 1.
// k, v: [past + n, H * D] (row stride ldkv), every position so far, the new ones last.
// out: [n, H * D] (row stride ldo). Query i attends to positions 0 .. past + i with
// softmax(q k^T / sqrt(D)), in attention_forward's order of operations (max-subtracted
// scores scaled inside the exp), so both agree to float rounding.
void cached_attention_forward(float* out, int64_t ldo, const float* q, int64_t ldq, const float* k,
                              const float* v, int64_t ldkv, int64_t n, int64_t past, int64_t H,
                              int64_t D);

}  // namespace tessera::kernels::cpu
