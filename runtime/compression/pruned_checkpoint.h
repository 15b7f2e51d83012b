// Reading a checkpoint's weights as global tensors and writing pruned weights (and masks) back
// as a checkpoint that loads under any layout: the input side of `tessera prune`, without any
// communicator (one process).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "runtime/checkpoint/checkpoint.h"

namespace tessera {

// A checkpoint's weights: every parameter's global tensor, vocabulary padding removed.
struct GlobalWeights {
  Manifest manifest;
  std::map<std::string, Tensor> tensors;
};
GlobalWeights read_global_weights(const std::string& step_dir);

// Writes <out_dir>/step_<step>/ (and `latest`) under dp = tp = pp = 1: the tensors, in the
// order and with the shard specs of `like` (the manifest they came from; shapes may differ,
// for a structurally pruned model), a mask.<name> for every entry of `masks`, no optimizer
// state, and the given config (YAML, and its model section) and the source's vocabulary. Returns what the save wrote.
SaveResult write_pruned_checkpoint(const std::string& out_dir, const Manifest& like,
                                   const std::map<std::string, Tensor>& tensors,
                                   const std::map<std::string, Tensor>& masks, const std::string& config_yaml,
                                   const std::optional<ModelConfig>& model);

}  // namespace tessera
