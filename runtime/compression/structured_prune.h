// Structured pruning by an importance score, giving a smaller dense model; head_dim stays (so
// heads * head_dim may fall below hidden_size). Every block keeps the same counts, as the
// config has one ffn_hidden_size, num_attention_heads and num_query_groups. Works on global
// (unsharded) tensors by name.
//  - GPT: whole MLP neurons (a row of c_fc and its bias, the matching column of mlp c_proj)
//    and whole attention heads (their q, k and v rows of c_attn and bias, their columns of
//    attn c_proj).
//  - Llama (structured_prune_llama.cc): SwiGLU channels (a row of gate_proj and of up_proj,
//    the column of down_proj, together); query heads within their key/value group (q_proj
//    rows, o_proj columns; every group keeps the same number, so the grouping stays uniform);
//    and whole key/value groups (k_proj and v_proj rows with all their query heads).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "runtime/data/batch_sampler.h"
#include "runtime/tensor.h"

namespace tessera {

struct StructuredPruneOptions {
  double neurons = 0;  // fraction of each block's MLP neurons removed, in [0, 1)
  double heads = 0;    // fraction of the attention heads removed (llama: of each group's query heads)
  double groups = 0;   // llama: fraction of each block's key/value groups removed
  int tp = 1;          // the smaller model must still split over this tensor-parallel size
};

// Parses "neurons=0.5,heads=0.25,groups=0.5" (any part may be left out) into the options.
// InputError "--structured <text>: <rule>" on anything else.
void parse_structured(const std::string& text, StructuredPruneOptions& options);

// Importance of every neuron and head of one block; higher is kept.
struct BlockScores {
  std::vector<double> neurons, heads;
  std::vector<double> groups;  // llama only: per key/value group
};
// L2 norm of each structure's weights (a neuron: its c_fc row and mlp c_proj column -- llama:
// gate and up rows, down column; a head: its q, k, v rows and attn c_proj columns -- llama:
// q rows and o columns; a llama group: its k and v rows and its heads' q rows and o columns).
std::vector<BlockScores> weight_scores(const std::map<std::string, Tensor>& weights, const ModelConfig& model);
// Mean |activation| over the tokens of a calibration batch: per neuron of gelu(c_fc(.)) (llama:
// of silu(gate) * up), per head of its attention output (before c_proj); a llama group scores
// the sum of its heads'. Runs the model on one process.
std::vector<BlockScores> activation_scores(const std::map<std::string, Tensor>& weights, const ModelConfig& model,
                                           int64_t vocab_size, const Batch& batch);

// What survives, per block: the kept neuron and head indices, ascending.
struct StructuredPlan {
  int64_t ffn = 0, heads = 0, head_dim = 0;  // per block, after pruning
  int64_t groups = 0;                        // llama: key/value groups per block, after pruning
  std::vector<std::vector<int64_t>> keep_neurons, keep_heads;
  std::vector<std::vector<int64_t>> keep_groups;  // llama; a kept head's group is always kept
};
// Removes round(fraction * count) of each block's lowest-scored structures (llama: first the
// groups, then round(heads * heads_per_group) query heads of each kept group). InputError when
// all heads, groups or neurons would go, or the kept counts do not divide by options.tp
// (llama: the kept groups, which tensor parallelism splits).
StructuredPlan plan_structured(const std::vector<BlockScores>& scores, const ModelConfig& model,
                               const StructuredPruneOptions& options);

// The smaller model's config (ffn_hidden_size, num_attention_heads, head_dim; llama: and
// num_query_groups).
ModelConfig pruned_model_config(const ModelConfig& model, const StructuredPlan& plan);
// The smaller model's tensors: the pruned ones cut down, the others copied.
std::map<std::string, Tensor> shrink_weights(const std::map<std::string, Tensor>& weights, const ModelConfig& model,
                                             const StructuredPlan& plan);
// Zeroes the removed structures' weights in place, keeping the shapes (the same function as
// the smaller model: a removed head or neuron then contributes exactly nothing).
void zero_removed(std::map<std::string, Tensor>& weights, const ModelConfig& model, const StructuredPlan& plan);

}  // namespace tessera
