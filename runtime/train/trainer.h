// The training loop: microbatches with gradient accumulation, pipeline stages run by a
// StageExecutor, data-parallel gradient averaging, global-norm clipping, AdamW (or ZeRO-1),
// periodic validation, the rank-0 log line, JSONL metrics and the Chrome trace.
#pragma once

#include <atomic>
#include <memory>
#include <optional>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/comm/communicator.h"
#include "runtime/config.h"
#include "runtime/data/batch_sampler.h"
#include "runtime/data/dataset.h"
#include "runtime/model/model.h"
#include "runtime/pipeline/stage_executor.h"
#include "runtime/train/flat_parameters.h"
#include "runtime/train/grad_sync.h"
#include "runtime/train/metrics.h"
#include "runtime/train/optimizer.h"
#include "runtime/train/trace.h"
#include "runtime/train/zero_adamw.h"

namespace tessera {

// The communicators a trainer uses, owned by the caller (normally a ParallelGrid).
struct ParallelGroups {
  Communicator* world = nullptr;  // null for a single process without MPI
  TpGroup tp;
  Communicator* dp = nullptr;  // null when dp size is 1
  int dp_rank = 0, dp_size = 1;
  Communicator* pp = nullptr;  // null when pp size is 1
  int pp_rank = 0, pp_size = 1;
  bool is_logging_rank() const { return world == nullptr || world->rank() == 0; }
};

class ParallelGrid;
// The groups of a ParallelGrid (which must outlive the trainer).
ParallelGroups parallel_groups(ParallelGrid& grid, bool sequence_parallel);

struct StepResult {
  double loss = 0, grad_norm = 0, lr = 0, step_ms = 0;
  double tp_comm_ms = 0;  // in tensor-parallel communication (forward, backward, loss, norms)
  bool skipped = false;   // non-finite loss or gradients, update dropped (train.on_nan: skip)
};

// What the embedding program (the CLI) gives a trainer beyond the config.
struct TrainerOptions {
  std::string config_yaml;  // the resolved config, saved in checkpoint manifests
  // Set (e.g. by a SIGUSR1/SIGTERM handler) to save a checkpoint and stop after this step.
  const std::atomic<bool>* stop_requested = nullptr;
};

// Layer counts of the p * v global stages: the configured partition, or for auto the
// partitioner's balanced split of the layers' FLOPs.
std::vector<int> stage_partition(const ParallelConfig& parallel, const LayerGraph& graph);

class Trainer {
 public:
  Trainer(const Config& config, const Dataset& data, ParallelGroups groups, TrainerOptions options = {});

  // Runs the next optimizer step over one global batch.
  StepResult train_step();
  // Mean validation loss over train.eval_iters global batches (fixed, the same for every
  // layout), collective over all ranks.
  double evaluate();
  // Trains to train.max_steps (resuming first when checkpoint.resume is auto), logging on
  // rank 0, saving checkpoints every checkpoint.interval steps and at the end; writes the
  // trace when log.trace is set. Returns early, after a checkpoint, when a stop is requested.
  void fit();
  // Saves a checkpoint of the current step into checkpoint.dir (collective over the world).
  void save();
  // Loads the newest complete checkpoint in checkpoint.dir, under this run's layout, whatever
  // layout saved it. Returns false (and trains from scratch) when there is none.
  bool resume();

  // This rank's model chunks (one unless virtual pipeline stages are used).
  const std::vector<std::unique_ptr<Model>>& chunks() const { return chunks_; }
  std::vector<Parameter*> parameters() const;
  int64_t step() const { return step_; }
  int microbatches_per_rank() const { return microbatches_; }
  // Gradient communication timing of the last step (zeros without data parallelism).
  GradSyncStats grad_sync_stats() const { return grad_sync_ ? grad_sync_->stats() : GradSyncStats{}; }
  int64_t optimizer_state_bytes() const;
  // Peak microbatch-chunks whose activations this rank held in the last step.
  int peak_in_flight() const { return executor_ ? executor_->peak_in_flight() : 1; }

 private:
  double all_reduce_scalar(double value, Communicator* comm, ReduceOp op);
  bool data_parallel() const { return groups_.dp != nullptr && groups_.dp_size > 1; }
  bool pipelined() const { return groups_.pp_size > 1; }
  // The StageExecutor runs the step: with pipeline stages, or full recompute on one stage.
  bool uses_executor() const { return executor_ != nullptr; }
  MicrobatchContext train_context(int microbatch) const;
  // Runs once per step when a layer has its final gradients: sums sequence-parallel partial
  // gradients over tp, then hands the layer to the data-parallel buckets.
  void on_layer_gradients_final(int layer);
  double forward_backward();  // returns this rank's sum of microbatch losses
  void trace(const char* name, TraceRecorder::Clock::time_point start);
  // This rank's parameters and optimizer moments as a checkpoint state; the moments point into
  // `moments` (and, with ZeRO-1, into the full flat buffers m and v, all-gathered when gather).
  CheckpointState checkpoint_state(std::vector<OptimizerMoments>& moments, Tensor& m, Tensor& v, bool gather);
  bool stop_requested_everywhere();

  Config config_;
  TrainerOptions options_;
  const Dataset& data_;
  ParallelGroups groups_;
  TpCommStats tp_comm_;  // the layers' tp communication time, read per step
  LayerGraph graph_;
  std::vector<std::unique_ptr<Model>> chunks_;
  std::vector<Layer*> layers_;  // all layers of all chunks, numbered as FlatParameters does
  std::unique_ptr<StageExecutor> executor_;  // with pipeline parallelism
  std::vector<Action> schedule_;
  std::unique_ptr<TraceRecorder> trace_;
  std::unique_ptr<FlatParameters> flat_;     // with data parallelism
  std::unique_ptr<GradientSync> grad_sync_;  // with data parallelism
  std::unique_ptr<AdamW> optimizer_;         // without ZeRO
  std::unique_ptr<ZeroAdamW> zero_optimizer_;
  BatchSampler train_sampler_;
  std::optional<BatchSampler> val_sampler_;
  int microbatches_ = 1;  // per dp rank per step
  int64_t step_ = 0;
  int64_t first_step_ = 0;  // the step this run started (or resumed) at
  int64_t skipped_steps_ = 0;
  double peak_flops_ = 0;  // per rank
};

}  // namespace tessera
