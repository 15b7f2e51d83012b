// A trained GPT's fp32 weights on one process, read from a checkpoint saved under any parallel
// layout, and the full causal forward over them: the reference that the KV-cache decode
// (decode.h) must reproduce, and the weights it runs on. For tensor-parallel serving a process
// holds one shard: its share of the attention heads (c_attn rows, c_proj columns) and of the
// MLP (c_fc rows, c_proj columns), as the training model's column/row-parallel layers split
// them; embeddings, norms and the head are replicated.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "runtime/data/vocabulary.h"
#include "runtime/model/tensor_parallel.h"
#include "runtime/tensor.h"

namespace tessera {

// One transformer block's tensors, in the training model's (nanoGPT's) layout. A = heads *
// head_dim may differ from the hidden size C after pruning: c_attn is [3A, C], c_proj [C, A].
struct BlockWeights {
  Tensor ln1_w, ln1_b;            // [C]
  Tensor attn_w, attn_b;          // c_attn: [3A, C], [3A] (q | k | v, heads contiguous)
  Tensor attn_proj_w, attn_proj_b;  // [C, A], [C]
  Tensor ln2_w, ln2_b;            // [C]
  Tensor fc_w, fc_b;              // [F, C], [F]
  Tensor mlp_proj_w, mlp_proj_b;  // [C, F], [C]
};

class InferenceModel {
 public:
  // A step directory or a checkpoint.dir (its newest checkpoint), saved under any (dp, tp, pp,
  // zero) layout, pruned ones included. InputError for a non-GPT or unreadable checkpoint.
  // With tp.size > 1, this process keeps the shard of tp.rank (and decode all-reduces over
  // tp.comm): InputError when the heads or the MLP width do not divide by tp.size.
  static InferenceModel load(const std::string& checkpoint_path, const TpGroup& tp = TpGroup::single());
  // From a model config and global, unpadded tensors by checkpoint name (wte.weight,
  // h.0.attn.c_attn.weight, ..., lm_head.weight). InputError naming the tensor when one is
  // missing or its shape does not fit the config.
  InferenceModel(const ModelConfig& config, Vocabulary vocabulary, const std::map<std::string, Tensor>& tensors,
                 const TpGroup& tp = TpGroup::single());

  const ModelConfig& config() const { return config_; }
  const Vocabulary& vocabulary() const { return vocabulary_; }
  int64_t vocab_size() const { return vocabulary_.size(); }  // real (unpadded)
  int64_t context_length() const { return config_.seq_length; }
  int64_t hidden_size() const { return config_.hidden_size; }
  int64_t num_heads() const { return config_.num_attention_heads / tp_.size; }  // this shard's
  int64_t head_dim() const { return head_dim_; }
  int64_t attention_width() const { return num_heads() * head_dim_; }  // A = heads * head_dim (this shard's)
  const TpGroup& tp() const { return tp_; }
  int64_t parameters() const { return parameters_; }  // of the whole model, a tied head once

  // Logits [B*T, vocab_size] of a full causal forward without any cache (the reference).
  // T <= context_length; tokens in [0, vocab_size). Unsharded models only.
  Tensor forward(const Tensor& tokens /* I32 [B, T] */) const;

  // The weights, for decode.
  const Tensor& wte() const { return wte_; }  // [V, C]
  const Tensor& wpe() const { return wpe_; }  // [context_length, C]
  const std::vector<BlockWeights>& blocks() const { return blocks_; }
  const Tensor& ln_f_w() const { return ln_f_w_; }
  const Tensor& ln_f_b() const { return ln_f_b_; }
  const Tensor& lm_head() const { return lm_head_; }  // [V, C]

 private:
  ModelConfig config_;
  Vocabulary vocabulary_;
  TpGroup tp_;
  int64_t head_dim_ = 0;
  int64_t parameters_ = 0;
  Tensor wte_, wpe_;
  std::vector<BlockWeights> blocks_;
  Tensor ln_f_w_, ln_f_b_, lm_head_;
};

}  // namespace tessera
