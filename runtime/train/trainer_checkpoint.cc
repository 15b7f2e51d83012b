// The Trainer's checkpoint glue: its parameters and optimizer moments as a CheckpointState,
// and save, resume and init_from (weights only) over runtime/checkpoint, with the fp16 loss
// scale and, for local SGD / DiLoCo, the replica and outer state (outer_checkpoint.h).
#include <chrono>
#include <optional>

#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/comm/agreement.h"
#include "runtime/compression/mask.h"
#include "runtime/train/host_staging.h"
#include "runtime/train/outer_checkpoint.h"
#include "runtime/train/trainer.h"

namespace tessera {

using Clock = TraceRecorder::Clock;

CheckpointState Trainer::checkpoint_state(CheckpointMoments& moments, bool gather, bool with_moments) {
  CheckpointState s;
  s.model = config_.model;
  s.step = step_;
  s.params = parameters();
  s.padded_rows = vocab_padded_rows(config_.model, graph_);
  if (loss_scaler_) s.extra["loss_scaler"] = loss_scaler_->to_json();
  s.optimizer_steps = optimizer_->steps_taken();
  if (!with_moments) return s;
  moments = optimizer_->checkpoint_moments(s.params, gather);
  for (OptimizerMoments& mo : moments.per_param) s.moments.push_back(&mo);
  return s;
}

CheckpointState Trainer::load_parameters(const std::string& step_dir, bool with_moments) {
  if (!zero_units_) {
    CheckpointMoments moments;
    CheckpointState state = checkpoint_state(moments, false, with_moments);
    HostStaging staging(state, false);  // a GPU's state is loaded through host copies
    load_checkpoint(step_dir, state, groups_.tp.rank, groups_.tp.size);
    staging.write_back();
    if (with_moments) optimizer_->load_moments(moments);
    return state;
  }
  // ZeRO-2/3: one unit at a time, so no rank holds the model whole (a GPU's through host copies).
  CheckpointState state;
  for (int u = 0; u < zero_units_->unit_count(); ++u) {
    zero_units_->materialize(u);
    CheckpointMoments moments;
    state.params = zero_units_->unit_parameters(u);
    state.moments.clear();
    if (with_moments) {
      moments = optimizer_->checkpoint_moments(state.params, false);
      for (OptimizerMoments& mo : moments.per_param) state.moments.push_back(&mo);
    }
    HostStaging staging(state, false);
    load_checkpoint(step_dir, state, groups_.tp.rank, groups_.tp.size);
    staging.write_back();
    if (with_moments) optimizer_->load_moments(moments);
    zero_units_->keep_loaded(u);
  }
  return state;
}

CheckpointLayout Trainer::checkpoint_layout() const {
  return {groups_.dp_size, groups_.tp.size, groups_.pp_size, groups_.dp_rank, groups_.tp.rank, groups_.pp_rank,
          optimizer_->zero_stage()};
}

std::string Trainer::save() { return save(config_.checkpoint.dir); }

std::string Trainer::save(const std::string& dir) {
  TESSERA_REQUIRE(!dir.empty(), "Trainer::save: no checkpoint directory (checkpoint.dir is empty)");
  const auto start = Clock::now();
  CheckpointMoments moments;
  // ZeRO: each dp rank writes the ranges it owns, nothing is gathered. Local SGD / DiLoCo
  // replicas differ, so their checkpoints keep whole shards.
  std::optional<std::vector<OwnedRange>> owned;
  if (!outer_sync_) owned = optimizer_->owned_ranges(parameters());
  TESSERA_CHECK(owned || !zero_units_, "ZeRO-{}: a checkpoint without dp-sharded ranges", optimizer_->zero_stage());
  CheckpointState state = checkpoint_state(moments, true, !owned);
  state.owned = std::move(owned);
  const HostStaging staging(state, true);  // a GPU's state is written from host copies
  const CheckpointLayout layout = checkpoint_layout();
  if (outer_sync_) {
    // [outer sync hook] Each replica's own state and the outer state (outer_checkpoint.h).
    state.extra["outer_sync"] =
        outer_checkpoint_extra(config_.parallel, groups_.dp_size, outer_sync_->replicas_identical(step_));
    state.write_extra_files =
        replica_state_writer({flat_.get(), optimizer_.get(), parameters(), outer_sync_.get()}, layout);
  }
  const SaveResult r = save_checkpoint(dir, state, layout, groups_.world, options_.config_yaml, vocab_.to_json(),
                                       config_.checkpoint.keep);
  message(LogLevel::Info,
          fmt::format("checkpoint: step {} saved to {} ({:.1f} MiB, {:.0f} ms){}", step_, r.step_dir,
                      r.bytes / 1048576.0, std::chrono::duration<double, std::milli>(Clock::now() - start).count(),
                      r.removed.empty() ? "" : fmt::format(", removed {}", fmt::join(r.removed, ", "))));
  if (options_.callbacks.on_checkpoint) options_.callbacks.on_checkpoint(step_, r.step_dir);
  return r.step_dir;
}

bool Trainer::resume() { return resume(config_.checkpoint.dir); }

bool Trainer::resume(const std::string& dir) {
  std::vector<std::string> warnings;
  std::optional<std::string> found;
  run_agreed(groups_.world, [&] { found = find_latest_checkpoint(dir, groups_.world, &warnings); });
  for (const std::string& w : warnings) message(LogLevel::Warning, fmt::format("checkpoint: {}", w));
  if (!found) {
    message(LogLevel::Info, fmt::format("checkpoint: none in {}, starting from step 0", dir));
    return false;
  }
  Manifest manifest;
  CheckpointState state;
  // Each rank reads the files of its own shard: a damaged one stops every rank together.
  run_agreed(groups_.world, [&] {
    manifest = read_manifest(*found);
    TESSERA_REQUIRE(manifest.vocabulary.is_null() || Vocabulary::from_json(manifest.vocabulary) == vocab_,
                    "{}: the checkpoint's vocabulary ({} entries) is not the vocabulary of {} ({} entries)", *found,
                    Vocabulary::from_json(manifest.vocabulary).size(), config_.data.path, vocab_.size());
    state = load_parameters(*found, true);
  });
  optimizer_->set_steps_taken(state.optimizer_steps);
  // [outer sync hook] Replica and outer state of local SGD / DiLoCo checkpoints.
  run_agreed(groups_.world, [&] {
    if (outer_sync_) {
      load_replica_state(*found, manifest, {flat_.get(), optimizer_.get(), parameters(), outer_sync_.get()},
                         checkpoint_layout(), config_.parallel);
    } else {
      check_resumable_without_outer_sync(*found, manifest);
    }
  });
  step_ = state.step;
  // A checkpoint of an fp32/bf16 run has no scaler state: an fp16 resume starts a fresh scale.
  if (loss_scaler_ && manifest.extra.contains("loss_scaler")) loss_scaler_->load_json(manifest.extra["loss_scaler"]);
  message(LogLevel::Info, fmt::format("checkpoint: resumed from {} at step {} (saved under dp {} x tp {} x pp {}, zero {})",
                                      *found, step_, manifest.layout.dp, manifest.layout.tp, manifest.layout.pp,
                                      manifest.layout.zero_stage));
  return true;
}

void Trainer::init_from(const std::string& path) {
  std::string step_dir;
  Manifest manifest;
  run_agreed(groups_.world, [&] {
    step_dir = resolve_checkpoint(path);
    manifest = read_manifest(step_dir);
    TESSERA_REQUIRE(manifest.vocabulary.is_null() || Vocabulary::from_json(manifest.vocabulary) == vocab_,
                    "init.from {}: the checkpoint's vocabulary is not the vocabulary of {}", step_dir,
                    config_.data.path);
    load_parameters(step_dir, false);  // weights and masks only: the optimizer and the step start fresh
  });
  if (outer_sync_) outer_sync_->reset_anchor();  // [outer sync hook] the outer step starts from these weights
  const SparsityStats s = sparsity_stats(parameters());
  message(LogLevel::Info,
          fmt::format("init: weights from {} (step {}){}", step_dir, manifest.step,
                      s.masked_params == 0 ? std::string()
                                           : fmt::format(", {} masked tensors on this rank, {:.1f}% of their weights pruned",
                                                         s.masked_params, 100.0 * s.pruned / s.elements)));
}

}  // namespace tessera
