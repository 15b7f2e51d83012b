// The Llama side of structured pruning (runtime/compression/structured_prune.h): GQA-aware
// weight scores, the plan's group and head selection, and cutting or zeroing q/k/v/o and
// gate/up/down. Called by the arch dispatch in structured_prune.cc.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/compression/structured_prune.h"

namespace tessera::structured {

std::vector<BlockScores> llama_weight_scores(const std::map<std::string, Tensor>& weights, const ModelConfig& model);
// Group scores from the heads' scores (sum over each group's heads), for activation scores.
void add_llama_group_scores(std::vector<BlockScores>& scores, const ModelConfig& model);
// Fills plan.groups/heads and keep_groups/keep_heads (plan.ffn, keep_neurons are the caller's).
void plan_llama_attention(const std::vector<BlockScores>& scores, const ModelConfig& model,
                          const StructuredPruneOptions& options, StructuredPlan& plan);
void shrink_llama(std::map<std::string, Tensor>& out, const std::map<std::string, Tensor>& weights,
                  const ModelConfig& model, const StructuredPlan& plan);
void zero_llama(std::map<std::string, Tensor>& weights, const ModelConfig& model, const StructuredPlan& plan);

}  // namespace tessera::structured
