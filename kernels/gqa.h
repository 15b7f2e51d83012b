// Grouped-query attention's key/value sharing, as a layout change in front of the attention
// kernel: q [rows, H * D] and k, v [rows, G * D] (G groups, H % G == 0) are packed into the
// [rows, 3 * H * D] q | k | v buffer that attention_forward reads, head h taking group
// h / (H / G)'s key and value (transformers' repeat_kv). G == H is multi-head attention,
// G == 1 multi-query attention.
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

void gqa_pack_forward(float* qkv, const float* q, const float* k, const float* v, int64_t rows,
                      int64_t heads, int64_t groups, int64_t head_dim);
// dq written; dk and dv written as the sums over the heads sharing each group.
void gqa_pack_backward(float* dq, float* dk, float* dv, const float* dqkv, int64_t rows, int64_t heads,
                       int64_t groups, int64_t head_dim);

}  // namespace tessera::kernels::cpu
