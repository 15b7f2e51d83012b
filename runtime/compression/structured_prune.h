// Structured pruning of a GPT: removes whole MLP neurons (a row of c_fc and its bias, the
// matching column of mlp c_proj) and whole attention heads (their q, k and v rows of c_attn
// and bias, their columns of attn c_proj) by an importance score, giving a smaller dense
// model: ffn_hidden_size and num_attention_heads shrink, head_dim stays (so heads * head_dim
// may fall below hidden_size). Every block keeps the same counts, as the config has one
// ffn_hidden_size and one num_attention_heads. Works on global (unsharded) tensors by name.
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
  double heads = 0;    // fraction of each block's attention heads removed, in [0, 1)
  int tp = 1;          // the smaller model must still split over this tensor-parallel size
};

// Parses "neurons=0.5,heads=0.25" (either part may be left out) into options.neurons/heads.
// InputError "--structured <text>: <rule>" on anything else.
void parse_structured(const std::string& text, StructuredPruneOptions& options);

// Importance of every neuron and head of one block; higher is kept.
struct BlockScores {
  std::vector<double> neurons, heads;
};
// L2 norm of each structure's weights (a neuron: its c_fc row and mlp c_proj column; a head:
// its q, k, v rows and attn c_proj columns).
std::vector<BlockScores> weight_scores(const std::map<std::string, Tensor>& weights, const ModelConfig& model);
// Mean |activation| over the tokens of a calibration batch: per neuron of gelu(c_fc(.)), per
// head of its attention output (before c_proj). Runs the model on one process.
std::vector<BlockScores> activation_scores(const std::map<std::string, Tensor>& weights, const ModelConfig& model,
                                           int64_t vocab_size, const Batch& batch);

// What survives, per block: the kept neuron and head indices, ascending.
struct StructuredPlan {
  int64_t ffn = 0, heads = 0, head_dim = 0;  // per block, after pruning
  std::vector<std::vector<int64_t>> keep_neurons, keep_heads;
};
// Removes round(fraction * count) of each block's lowest-scored structures. InputError when
// all heads (or neurons) would go, or the kept counts do not divide by options.tp.
StructuredPlan plan_structured(const std::vector<BlockScores>& scores, const ModelConfig& model,
                               const StructuredPruneOptions& options);

// The smaller model's config (ffn_hidden_size, num_attention_heads, head_dim).
ModelConfig pruned_model_config(const ModelConfig& model, const StructuredPlan& plan);
// The smaller model's tensors: the pruned ones cut down, the others copied.
std::map<std::string, Tensor> shrink_weights(const std::map<std::string, Tensor>& weights, const ModelConfig& model,
                                             const StructuredPlan& plan);
// Zeroes the removed structures' weights in place, keeping the shapes (the same function as
// the smaller model: a removed head or neuron then contributes exactly nothing).
void zero_removed(std::map<std::string, Tensor>& weights, const ModelConfig& model, const StructuredPlan& plan);

}  // namespace tessera
