// Gradual magnitude pruning during training (Zhu & Gupta 2017): the cubic sparsity schedule,
// and the re-pruning of a model's sharded weights to a sparsity, chosen on the global tensors'
// magnitudes with collectives so that every (dp, tp, pp, zero) layout gets the same masks.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "core/config.h"
#include "runtime/model/parameter.h"

namespace tessera {

// Whether the masks are recomputed once `step` steps are done: at start_step, start_step +
// interval, ..., end_step. Never when prune.target_sparsity is 0.
bool is_prune_step(const PruneConfig& prune, int64_t step);

// The cubic schedule s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t_end - t0))^3 with s_i = 0:
// 0 up to start_step, target_sparsity from end_step on; it prunes fast while many weights are
// redundant and slowly near the end.
double scheduled_sparsity(const PruneConfig& prune, int64_t step);

// Where this rank's shards sit: its tp group (shards of one tensor) and its pp group (the
// other stages' tensors). Null communicators stand for groups of one.
struct PruneGroups {
  Communicator* tp = nullptr;
  int tp_rank = 0, tp_size = 1;
  Communicator* pp = nullptr;
};

struct PruneCounts {
  int64_t pruned = 0, total = 0;  // over the whole model (global) or summed over tensors (layer)
};

// Replaces the masks of the prunable weights (is_prunable_weight, no embeddings) with ones that
// prune exactly round(sparsity * n) entries of the smallest |w|: n over all of them together
// (global) or per tensor (layer), ties broken by (tensor name, global index). Zeroes the pruned
// weights. Collective over tp (and pp for global). Padding rows of vocab-parallel tables
// (real_rows: name -> rows that are real) are neither counted nor pruned.
PruneCounts prune_to_sparsity(const std::vector<Parameter*>& params, double sparsity, bool global_scope,
                              const std::map<std::string, int64_t>& real_rows, const PruneGroups& groups);

}  // namespace tessera
