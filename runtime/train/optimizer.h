// The optimizer interface the Trainer drives (clip, update, state for checkpoints), AdamW over
// a model's parameters (fp32 moments per parameter shard), and the learning-rate schedule
// (linear warm-up, cosine decay to min_lr, as nanoGPT). ZeRO-1 is the other implementation
// (zero_adamw.h); make_optimizer picks one from the config.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/compute/backend.h"
#include "runtime/model/parameter.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

double learning_rate(const OptimizerConfig& opt, int64_t step, int64_t max_steps);

// The AdamW update's arguments for one parameter: weight decay only where the parameter takes it.
AdamWStep adamw_step(const OptimizerConfig& config, double lr, bool weight_decay, int64_t step, float grad_scale);

// An optimizer's moments as per-parameter local shards, for a checkpoint save or load. The
// views in `per_param` may point into `storage` (a sharded optimizer's gathered buffers),
// which this object then keeps alive.
struct CheckpointMoments {
  std::vector<OptimizerMoments> per_param;  // parallel to the parameters asked for
  std::vector<Tensor> storage;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // The squared global L2 norm of the gradients this optimizer updates, reduced over every rank
  // that holds gradients (tp shards summed, tp-replicated parameters counted once, stages summed
  // over pp when given): a [1] fp32 tensor on the compute device, the same on every rank, not
  // read back (grad_norm.h).
  virtual Tensor squared_grad_norm(const TpGroup& tp, Communicator* pp) = 0;
  // Multiplies the gradients this optimizer updates by factor (fp16: divides the loss scale out
  // before clipping); returns whether they are all finite on this rank.
  virtual bool scale_gradients(float factor) = 0;
  // One update with learning rate lr from the gradients times grad_scale: global-norm clipping
  // (the trainer forms the coefficient from the norm), applied inside the update's one pass.
  virtual void step(double lr, float grad_scale) = 0;
  virtual int64_t steps_taken() const = 0;
  virtual void set_steps_taken(int64_t steps) = 0;
  // Bytes of optimizer state held by this rank.
  virtual int64_t state_bytes() const = 0;
  // The ZeRO stage the state is sharded with (0: every replica holds all of it), as the
  // checkpoint layout records it.
  virtual int zero_stage() const = 0;
  // The moments of `params` (this rank's parameters, every one updated by this optimizer).
  // gather: the current values, for a save (collective over dp for a sharded optimizer);
  // otherwise buffers for a load to fill, handed back to load_moments afterwards.
  virtual CheckpointMoments checkpoint_moments(const std::vector<Parameter*>& params, bool gather) = 0;
  virtual void load_moments(const CheckpointMoments& loaded) = 0;
  // This rank's element ranges of `params` with their moments, for a dp-sharded save
  // (CheckpointState::owned); nullopt when every replica holds all of the state (no ZeRO).
  virtual std::optional<std::vector<OwnedRange>> owned_ranges(const std::vector<Parameter*>& params) = 0;
};

class AdamW : public Optimizer {
 public:
  // The update, the norm and the clip run on `ops` (borrowed), the backend of the parameters'
  // device; the moments are made there.
  AdamW(std::vector<Parameter*> params, const OptimizerConfig& config, Backend& ops);
  Tensor squared_grad_norm(const TpGroup& tp, Communicator* pp) override;
  bool scale_gradients(float factor) override;
  void step(double lr, float grad_scale) override;
  int64_t steps_taken() const override { return step_; }
  void set_steps_taken(int64_t steps) override { step_ = steps; }
  int64_t state_bytes() const override;
  int zero_stage() const override { return 0; }
  // The moments share storage with the optimizer: a load writes into them directly.
  CheckpointMoments checkpoint_moments(const std::vector<Parameter*>& params, bool gather) override;
  void load_moments(const CheckpointMoments&) override {}
  std::optional<std::vector<OwnedRange>> owned_ranges(const std::vector<Parameter*>&) override {
    return std::nullopt;
  }
  // The moments of parameter i (in construction order), sharing storage with the optimizer.
  const Tensor& exp_avg(size_t i) const { return states_.at(i).m; }
  const Tensor& exp_avg_sq(size_t i) const { return states_.at(i).v; }

 private:
  struct State {
    Parameter* param;
    Tensor m, v;
  };
  OptimizerConfig config_;
  Backend& ops_;
  std::vector<State> states_;
  int64_t step_ = 0;
};

class FlatParameters;
class GradientSync;
// Multiplies the fp32 tensors in place by factor on ops; returns whether every element is finite.
bool scale_and_check_finite(Backend& ops, std::vector<Tensor> grads, float factor);

// The optimizer for this rank: ZeRO-1 sharded AdamW when zero_stage is 1 under data
// parallelism (then flat, sync and dp are required), else AdamW over params; both update on ops.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, int zero_stage, std::vector<Parameter*> params,
                                          FlatParameters* flat, GradientSync* sync, Communicator* dp, Backend& ops);

}  // namespace tessera
