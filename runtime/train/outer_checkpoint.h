// Checkpoints of local SGD / DiLoCo runs. Between syncs the replicas differ, so every rank
// also writes its replica's state, <step_dir>/replica.dp<d>.tp<t>.pp<p>.safetensors: its flat
// parameters and AdamW moments and the outer state (anchor, momentum, reductions in flight).
// The usual shard files hold dp replica 0's parameters, and the manifest's extra.outer_sync
// says whether the replicas were identical (a checkpoint taken right after a sync): only then
// may a run resume it under another dp size, or without the outer sync.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "runtime/checkpoint/manifest.h"
#include "runtime/model/parameter.h"
#include "runtime/train/flat_parameters.h"
#include "runtime/train/optimizer.h"
#include "runtime/train/outer_sync.h"

namespace tessera {

// What a rank saves and restores beyond the shard files; borrowed from the trainer.
struct ReplicaState {
  FlatParameters* flat = nullptr;
  Optimizer* inner = nullptr;      // each replica's own (unsharded) optimizer
  std::vector<Parameter*> params;  // the optimizer's parameters, in its order
  OuterSync* outer = nullptr;
};

// The manifest's extra.outer_sync entry of a run with parallel `p` and `dp` replicas.
nlohmann::json outer_checkpoint_extra(const ParallelConfig& p, int dp, bool replicas_identical);

// Collects this rank's replica and outer state now (collective over dp when the outer state
// is sharded) and returns the function that writes it into a checkpoint's staging directory.
std::function<void(const std::string&)> replica_state_writer(const ReplicaState& s, const CheckpointLayout& mine);

// Restores the replica and outer state from step_dir after the shard files were loaded: this
// rank's own replica file when the checkpoint has this run's dp, tp and pp sizes; dp replica
// 0's file under another dp size when its replicas were identical. A checkpoint without
// extra.outer_sync (saved with allreduce) starts the outer state from the loaded weights.
// InputError naming the checkpoint and the rule otherwise.
// Saved under another data_parallel_sync or outer_fragments, identical replicas also restart
// the outer state from the loaded weights.
void load_replica_state(const std::string& step_dir, const Manifest& manifest, const ReplicaState& s,
                        const CheckpointLayout& mine, const ParallelConfig& parallel);

// For a run without an outer sync: refuses a checkpoint whose replicas differed.
void check_resumable_without_outer_sync(const std::string& step_dir, const Manifest& manifest);

}  // namespace tessera
