// The training loop: microbatches with gradient accumulation, data-parallel gradient
// averaging, global-norm clipping, AdamW, periodic validation, the rank-0 log line and
// JSONL metrics.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "runtime/comm/communicator.h"
#include "runtime/config.h"
#include "runtime/data/batch_sampler.h"
#include "runtime/data/dataset.h"
#include "runtime/model/model.h"
#include "runtime/train/metrics.h"
#include "runtime/train/flat_parameters.h"
#include "runtime/train/grad_sync.h"
#include "runtime/train/optimizer.h"
#include "runtime/train/zero_adamw.h"

namespace tessera {

// The communicators a trainer uses, owned by the caller (normally a ParallelGrid).
struct ParallelGroups {
  Communicator* world = nullptr;  // null for a single process without MPI
  TpGroup tp;
  Communicator* dp = nullptr;  // null when dp size is 1
  int dp_rank = 0, dp_size = 1;
  bool is_logging_rank() const { return world == nullptr || world->rank() == 0; }
};

struct StepResult {
  double loss = 0, grad_norm = 0, lr = 0, step_ms = 0;
};

class Trainer {
 public:
  Trainer(const Config& config, const Dataset& data, ParallelGroups groups);

  // Runs the next optimizer step over one global batch.
  StepResult train_step();
  // Mean validation loss over train.eval_iters microbatches (fixed batches, all ranks).
  double evaluate();
  // Trains to train.max_steps, logging on rank 0.
  void fit();

  Model& model() { return *model_; }
  int64_t step() const { return step_; }
  // Gradient communication timing of the last step (zeros without data parallelism).
  GradSyncStats grad_sync_stats() const { return grad_sync_ ? grad_sync_->stats() : GradSyncStats{}; }
  int64_t optimizer_state_bytes() const;
  int microbatches_per_rank() const { return microbatches_; }

 private:
  double all_reduce_scalar(double value, Communicator* comm, ReduceOp op);
  // Runs once per step when layer `layer` has its final gradients: sums sequence-parallel
  // partial gradients over tp, then hands the layer to the data-parallel buckets.
  void on_layer_gradients_final(int layer);
  bool data_parallel() const { return groups_.dp != nullptr && groups_.dp_size > 1; }

  Config config_;
  const Dataset& data_;
  ParallelGroups groups_;
  LayerGraph graph_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<FlatParameters> flat_;     // with data parallelism
  std::unique_ptr<GradientSync> grad_sync_;  // with data parallelism
  std::unique_ptr<AdamW> optimizer_;         // without ZeRO
  std::unique_ptr<ZeroAdamW> zero_optimizer_;
  BatchSampler train_sampler_;
  std::optional<BatchSampler> val_sampler_;
  int microbatches_ = 1;  // per dp rank per step
  int64_t step_ = 0;
  double peak_flops_ = 0;  // per rank
};

}  // namespace tessera
