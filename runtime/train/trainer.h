// The training loop: microbatches with gradient accumulation through the Compute seam (fp32,
// or bf16/fp16 with fp32 masters and fp16 loss scaling), pipeline stages run by a
// StageExecutor, data-parallel gradient averaging (or local SGD / DiLoCo outer syncs),
// global-norm clipping, an Optimizer (AdamW, ZeRO-1, or ZeRO-2/3 over ZeroUnits), periodic
// validation, JSONL metrics and the Chrome trace. The trainer prints nothing:
// its step lines and messages go to the callbacks (log_with_spdlog gives the CLI's output).
// trainer.cc holds the step, trainer_checkpoint.cc save/resume/init, trainer_fit.cc the loop.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "partitioner/partition_choice.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/comm/communicator.h"
#include "runtime/compute/compute.h"
#include "core/config.h"
#include "runtime/data/batch_sampler.h"
#include "runtime/data/data_source.h"
#include "runtime/data/dataset.h"
#include "runtime/model/layer_registry.h"
#include "runtime/model/model.h"
#include "runtime/pipeline/stage_executor.h"
#include "runtime/train/flat_parameters.h"
#include "runtime/train/grad_sync.h"
#include "runtime/train/loss_scaler.h"
#include "runtime/train/metrics.h"
#include "runtime/train/optimizer.h"
#include "runtime/train/outer_sync.h"
#include "runtime/train/parallel_groups.h"
#include "runtime/train/trace.h"
#include "runtime/train/zero_units.h"

namespace tessera {

struct StepResult {
  double loss = 0, grad_norm = 0, lr = 0, step_ms = 0;
  double tp_comm_ms = 0;  // in tensor-parallel communication (forward, backward, loss, norms)
  bool skipped = false;   // non-finite loss or gradients, update dropped (train.on_nan: skip, or fp16 overflow)
  double loss_scale = 0;  // fp16: the dynamic loss scale after this step; 0 without loss scaling
  // Data-parallel traffic of this step: bytes this rank sent (ring estimate) and the time the
  // step waited on the dp link (gradient all-reduce, or local SGD / DiLoCo outer syncs).
  double dp_bytes = 0, dp_wait_ms = 0;
  int64_t step = 0;       // the steps done after this one (1 for the first), as the log line counts
  // Times the host waited on the GPU during the step (0 on the CPU): 1 (2 with fp16 loss scaling,
  // whose overflow check the ranks agree on first), plus 1 if forward_backward() read the loss.
  int64_t host_waits = 0;
};

enum class LogLevel { Info, Warning };

// Called on every rank (the values are the same everywhere, except the loss and gradient
// norm of local_sgd / diloco replicas, which are each replica's own; print on one), in the training
// thread, whoever drives the loop: fit() or the step-level calls. Empty ones are skipped.
struct TrainerCallbacks {
  // After each optimizer step (train_step, optimizer_step, and so fit).
  std::function<void(const StepResult&)> on_step;
  // After each evaluate(): the step it evaluated at and the mean validation loss.
  std::function<void(int64_t step, double val_loss)> on_eval;
  // After each checkpoint is committed: its step and step directory.
  std::function<void(int64_t step, const std::string& step_dir)> on_checkpoint;
  // In fit(), on each step that logs (step 1, every log.interval, the last, validations):
  // its step-line metrics (format_step_line makes the line).
  std::function<void(const StepMetrics&)> on_log;
  // On the logging rank (world rank 0) only: each message of the trainer (checkpoint saved,
  // resumed, pruned, the model's FLOPs and peak, peak memory, ...), one line without newline.
  std::function<void(LogLevel level, const std::string& line)> on_message;
};

// Fills the callbacks left empty with the `tessera train` output: on rank 0, the step line
// and the messages through spdlog. What an embedding program gets with one call.
void log_with_spdlog(TrainerCallbacks& callbacks, bool logging_rank);

// What the embedding program (the CLI) gives a trainer beyond the config.
struct TrainerOptions {
  std::string config_yaml;  // the resolved config, saved in checkpoint manifests
  // Set (e.g. by a SIGUSR1/SIGTERM handler, or a callback) to save a checkpoint and stop
  // fit() after this step; the ranks agree on it, so setting it on one rank is enough.
  const std::atomic<bool>* stop_requested = nullptr;
  // User-defined layers: placed into the layer graph built from config.model (so the
  // pipeline partition and the costs include them) and built by layer_registry, which must
  // then be given (borrowed, only during construction).
  std::vector<CustomLayerPlacement> custom_layers;
  const LayerRegistry* layer_registry = nullptr;
  TrainerCallbacks callbacks;
  // The Compute to run on; null: the CPU compute of train.precision and train.gemm. With
  // train.device = cuda it is the rank's CUDA compute (TrainingSession makes it): the
  // parameters, gradients, optimizer state and activations then live on its device.
  std::shared_ptr<Compute> compute;
};

class Trainer {
 public:
  // With the built-in source over a Dataset (borrowed: it must outlive the trainer).
  Trainer(const Config& config, const Dataset& data, ParallelGroups groups, TrainerOptions options = {});
  // With the embedding program's own source (borrowed: it must outlive the trainer).
  Trainer(const Config& config, DataSource& data, ParallelGroups groups, TrainerOptions options = {});

  // Runs the next optimizer step over one global batch: forward_backward(), then
  // optimizer_step().
  StepResult train_step();

  // The step in two halves, for a loop that wants to look at the gradients in between.
  // forward_backward runs forward and backward of this rank's microbatches of the current
  // step (gradients zeroed first, then accumulated and averaged over dp) and returns the
  // step's loss, the mean over the global batch, the same on every rank (with local_sgd /
  // diloco: the mean over this replica's share, see runtime/train/outer_sync.h). Without an argument
  // the batch comes from the DataSource; `batch` is instead this replica's share of the
  // global batch: I32 tokens and targets [microbatches_per_rank() * micro_batch_size,
  // seq_length], the same on every tp rank and pipeline stage of the replica.
  double forward_backward();
  double forward_backward(const Batch& batch);
  // Clips, updates (AdamW, ZeRO-1 or ZeRO-2/3) and advances the step; needs a forward_backward first.
  StepResult optimizer_step();
  // Mean validation loss over train.eval_iters global batches (fixed, the same for every
  // layout), collective over all ranks.
  double evaluate();
  // Trains to train.max_steps (resuming first when checkpoint.resume is auto), logging on
  // rank 0, saving checkpoints every checkpoint.interval steps and at the end; writes the
  // trace when log.trace is set. Returns early, after a checkpoint, when a stop is requested.
  void fit();
  // Saves a checkpoint of the current step into checkpoint.dir, or dir (collective over the
  // world); returns the step directory.
  std::string save();
  std::string save(const std::string& dir);
  // Loads the newest complete checkpoint in checkpoint.dir (or dir), under this run's layout,
  // whatever layout saved it. Returns false (and trains from scratch) when there is none.
  // Collective, as init_from: a checkpoint that cannot be read on any rank makes every rank
  // throw the same error, an AgreedError (an InputError) for a damaged file
  // (runtime/comm/agreement.h).
  bool resume();
  bool resume(const std::string& dir);
  // Loads the weights (and pruning masks) of the checkpoint at `path` (a step directory or a
  // checkpoint.dir) under this run's layout, keeping step 0 and a fresh optimizer: init.from.
  void init_from(const std::string& path);

  // This rank's model chunks (one unless virtual pipeline stages are used).
  const std::vector<std::unique_ptr<Model>>& chunks() const { return chunks_; }
  std::vector<Parameter*> parameters() const;
  int64_t step() const { return step_; }
  int microbatches_per_rank() const { return microbatches_; }
  // The layer graph the chunks were built from (custom layers included).
  const LayerGraph& graph() const { return graph_; }
  const Vocabulary& vocabulary() const { return vocab_; }
  // The backend and precision the layers run with.
  const Compute& compute() const { return *compute_; }
  // Gradient communication timing of the last step (zeros without data parallelism).
  GradSyncStats grad_sync_stats() const {
    return grad_sync_ ? grad_sync_->stats() : zero_units_ ? zero_units_->stats() : GradSyncStats{};
  }
  // The local SGD / DiLoCo outer sync (parallel.data_parallel_sync), null with allreduce.
  const OuterSync* outer_sync() const { return outer_sync_.get(); }
  // The optimizer's state and, with local SGD / DiLoCo, the outer state.
  int64_t optimizer_state_bytes() const;
  // Peak microbatch-chunks whose activations this rank held in the last step.
  int peak_in_flight() const { return executor_ ? executor_->peak_in_flight() : 1; }
  // The peak of this rank's tensor memory where the steps compute since the end of the set-up:
  // the host's, or on a GPU its allocator's blocks.
  int64_t peak_tensor_bytes() const;

 private:
  Trainer(const Config& config, std::unique_ptr<DataSource> owned, DataSource* data, ParallelGroups groups,
          TrainerOptions options);
  double all_reduce_scalar(double value, Communicator* comm, ReduceOp op);
  bool data_parallel() const { return groups_.dp != nullptr && groups_.dp_size > 1; }
  // local_sgd / diloco: replicas take inner steps on their own (runtime/train/outer_sync.h).
  bool local_sync() const { return config_.parallel.data_parallel_sync != "allreduce"; }
  bool pipelined() const { return groups_.pp_size > 1; }
  // The StageExecutor runs the step: with pipeline stages, or full recompute on one stage.
  bool uses_executor() const { return executor_ != nullptr; }
  // Microbatch mb of this rank: from step_batch_ when set, else from the DataSource.
  MicrobatchContext train_context(int microbatch);
  // Runs once per step when a layer has its final gradients: its fix-ups, then hands the layer
  // to the data-parallel buckets. ZeRO-2/3 units run the fix-ups per microbatch themselves.
  void on_layer_gradients_final(int layer);
  // Sums sequence-parallel partial gradients over tp and zeroes pruned weights' gradients.
  void fix_layer_gradients(int layer);
  // The step's forward and backward of this rank's microbatches and the gradients' reductions;
  // leaves the step's loss in pending_loss_ (forward_backward and train_step call it).
  void accumulate_gradients();
  // This rank's microbatch losses ([1] each on the compute device; none on stages without the head).
  std::vector<Tensor> run_microbatches();
  // The step's loss, the mean over the global batch (over this replica's with local_sgd / diloco),
  // as a [1] tensor on the compute device, reduced over pp and dp there: not read back.
  Tensor step_loss(const std::vector<Tensor>& losses);
  // The communicator the dp traffic crosses: the outer sync's host link, or the gradients' dp group.
  Communicator& dp_link() const { return outer_sync_ ? *groups_.host_dp : *groups_.dp; }
  // Times the host has waited on the compute device so far (0 on the CPU).
  int64_t host_waits() const;
  // The microbatch's context: its batch on the compute's device (uploaded when that is a GPU).
  MicrobatchContext make_context(int microbatch, const Batch& batch, bool training);
  void trace(const char* name, TraceRecorder::Clock::time_point start);
  // This rank's parameters and optimizer moments as a checkpoint state; the moments point into
  // `moments`, gathered from a sharded optimizer when gather (for a save). Without
  // with_moments they are left out (a dp-sharded save gives them as owned ranges).
  CheckpointState checkpoint_state(CheckpointMoments& moments, bool gather, bool with_moments = true);
  // Reads this rank's parameters (with_moments: and the optimizer's moments) from a step
  // directory; returns what was read (step counters). ZeRO-2/3: one unit at a time, so a rank
  // holds one unit whole at most. Not collective: call it under run_agreed.
  CheckpointState load_parameters(const std::string& step_dir, bool with_moments);
  // This rank's place in the layout and the optimizer's ZeRO stage, as checkpoints record them.
  CheckpointLayout checkpoint_layout() const;
  bool stop_requested_everywhere();
  // A message to the on_message callback, on the logging rank only.
  void message(LogLevel level, const std::string& line) const;
  void log_run_start() const;
  void log_run_end();
  // fp16: divides the gradients by the loss scale; returns whether any is inf/NaN (agreed over
  // every rank that holds gradients).
  bool unscale_gradients();
  // The MFU denominator: train.peak_tflops, else the best GEMM rate of this run's backend and
  // compute dtype, measured now (warns when the dtype runs emulated).
  void set_mfu_roof();
  // A logged window outran the measured roof (roof_at_least): measures it again, says so.
  void raise_mfu_roof(double achieved);

  // Steps recorded in the trace: the first is skipped (allocations, first-touch), then ten.
  static constexpr int64_t kTraceFirstStep = 1, kTraceSteps = 10;

  Config config_;
  TrainerOptions options_;
  std::unique_ptr<DataSource> owned_data_;  // the DatasetSource of the Dataset constructor
  DataSource* data_;
  Vocabulary vocab_;
  ParallelGroups groups_;
  TpCommStats tp_comm_;  // the layers' tp communication time, read per step
  std::shared_ptr<Compute> compute_;
  std::optional<LossScaler> loss_scaler_;  // fp16 only
  LayerGraph graph_;
  std::vector<std::unique_ptr<Model>> chunks_;
  std::vector<Layer*> layers_;  // all layers of all chunks, numbered as FlatParameters does
  std::unique_ptr<StageExecutor> executor_;  // with pipeline parallelism
  std::vector<Action> schedule_;
  std::unique_ptr<TraceRecorder> trace_;
  std::unique_ptr<FlatParameters> flat_;     // with data parallelism
  std::unique_ptr<GradientSync> grad_sync_;  // with data parallelism, ZeRO stage 0 or 1
  std::unique_ptr<ZeroUnits> zero_units_;    // with data parallelism, ZeRO stage 2 or 3
  // ZeRO-2/3 with a head tied across pipeline stages: the sum of the table's gradient blocks,
  // taken over from the executor (null otherwise).
  std::unique_ptr<TiedEmbeddingSync> tied_blocks_;
  int64_t setup_peak_bytes_ = 0;  // tensor memory peak of the set-up (before the steps')
  // Data-parallel collective payloads of the training steps of this run (not checkpoints or
  // evaluation), for the traffic line at the end of the run.
  CommTraffic dp_traffic_at_step_start_, dp_traffic_;
  int64_t dp_traffic_steps_ = 0;
  std::unique_ptr<Optimizer> optimizer_;      // AdamW, ZeRO-1 or ZeRO-2/3 under data-parallel allreduce
  std::unique_ptr<OuterSync> outer_sync_;     // local_sgd / diloco
  const Batch* step_batch_ = nullptr;  // forward_backward(batch) while it runs
  // Set by accumulate_gradients for optimizer_step: the step's loss (on the compute device, read
  // with the gradient norm), when the step started, and the host waits until then.
  std::optional<Tensor> pending_loss_;
  TraceRecorder::Clock::time_point step_start_;
  int64_t host_waits_at_step_start_ = 0;
  int microbatches_ = 1;  // per dp rank per step
  int64_t step_ = 0;
  int64_t first_step_ = 0;  // the step this run started (or resumed) at
  int64_t skipped_steps_ = 0;
  double peak_flops_ = 0;  // per rank
};

}  // namespace tessera
