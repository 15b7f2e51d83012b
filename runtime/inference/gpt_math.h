// The pieces of the GPT forward that the full (reference) forward and the KV-cache decode
// share: everything but attention itself, in the training model's order of operations
// (runtime/model: embedding_layer, transformer_block, head_layer), so both give the training
// model's logits.
#pragma once

#include <cstdint>

#include "runtime/inference/inference_model.h"

namespace tessera::gpt_math {

// x [rows, C] = wte[tokens[r]] + wpe[positions[r]].
Tensor embed(const InferenceModel& model, const int32_t* tokens, const int64_t* positions, int64_t rows);
// ln_1 then c_attn: qkv [rows, 3A] of the block input x [rows, C].
Tensor attention_inputs(const BlockWeights& w, const Tensor& x);
// The rest of the block, in place on x [rows, C]: x += c_proj(att) + bias, then
// x += mlp(ln_2(x)). att [rows, A] is the attention output. On a tensor-parallel shard, both
// projections are partial sums over this rank's heads / MLP columns, completed by
// reduce-from-tp (an all-reduce over tp.comm) before the bias, as in the training block.
void finish_block(const BlockWeights& w, Tensor& x, const Tensor& att, const TpGroup& tp);
// ln_f then lm_head: logits [rows, V] of x [rows, C].
Tensor logits(const InferenceModel& model, const Tensor& x);

}  // namespace tessera::gpt_math
