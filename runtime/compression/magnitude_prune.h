// Unstructured magnitude pruning: masks that zero the smallest |w| of a model's linear
// weights, either a fraction of them (over all tensors together, or per tensor) or an N:M
// pattern (in every group of M consecutive weights along the input dimension keep the N
// largest, as NVIDIA's 2:4 sparse tensor cores want). Works on global (unsharded) tensors.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

struct MagnitudePruneOptions {
  enum class Scope { Global, Layer };
  double sparsity = 0.5;  // fraction in [0, 1) pruned; ignored with a pattern
  Scope scope = Scope::Global;
  int pattern_n = 0, pattern_m = 0;  // N:M pattern (keep n of every m); 0:0 = none
};

// Whether `name` is a weight that pruning touches: the linear layers' matrices (attn c_attn,
// attn c_proj, mlp c_fc, mlp c_proj, lm_head; an mlp model's fc.*.weight and head.weight),
// and the embedding tables only when include_embeddings. Never norms or biases.
bool is_prunable_weight(const std::string& name, bool include_embeddings);

// Parses "N:M" (0 < N < M); InputError "--pattern <text>: <rule>" otherwise.
std::pair<int, int> parse_nm_pattern(const std::string& text);

// F32 masks (1 keep, 0 prune) for the given weights, by |w|. Unstructured: exactly
// round(sparsity * n) entries are pruned per tensor (Layer) or over all of them (Global), ties
// broken by position. N:M: every group of M along the last axis keeps exactly N (the last
// axis must divide by M). InputError on a bad sparsity or a shape the pattern cannot cut.
std::map<std::string, Tensor> magnitude_masks(const std::map<std::string, Tensor>& weights,
                                              const MagnitudePruneOptions& options);

}  // namespace tessera
