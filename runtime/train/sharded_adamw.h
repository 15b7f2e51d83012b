// AdamW for ZeRO stages 2 and 3: moments over this rank's blocks of the units only, updated
// from the reduce-scattered shard gradient (runtime/train/zero_units.h); the global gradient
// norm is the sum of the shards' squares over dp (and tp, pp).
#pragma once

#include "core/config.h"
#include "runtime/comm/communicator.h"
#include "runtime/train/optimizer.h"
#include "runtime/train/zero_units.h"

namespace tessera {

class ShardedAdamW : public Optimizer {
 public:
  // units and dp are borrowed and must outlive the optimizer.
  // The norm and the update run on ops (borrowed), the backend of the parameters' device.
  ShardedAdamW(ZeroUnits& units, Communicator& dp, const OptimizerConfig& config, Backend& ops);

  Tensor squared_grad_norm(const TpGroup& tp, Communicator* pp) override;
  bool scale_gradients(float factor) override { return scale_and_check_finite(ops_, {units_.shard_grads()}, factor); }
  // Updates this rank's blocks, then lets the units gather them (stage 2).
  void step(double lr, float grad_scale) override;
  int64_t state_bytes() const override { return static_cast<int64_t>(m_.nbytes() + v_.nbytes()); }
  int64_t steps_taken() const override { return step_; }
  void set_steps_taken(int64_t steps) override { step_ = steps; }
  int zero_stage() const override { return units_.stage(); }
  // gather: the moments all-gathered per parameter (collective over dp); otherwise full
  // per-parameter buffers for a load, of which load_moments keeps this rank's blocks.
  CheckpointMoments checkpoint_moments(const std::vector<Parameter*>& params, bool gather) override;
  void load_moments(const CheckpointMoments& loaded) override;
  // Each parameter's part of this rank's shard, as views of the shard buffers.
  std::optional<std::vector<OwnedRange>> owned_ranges(const std::vector<Parameter*>& params) override;

 private:
  ZeroUnits& units_;
  Communicator& dp_;
  OptimizerConfig config_;
  Backend& ops_;
  Tensor m_, v_;
  int64_t step_ = 0;
  std::vector<Parameter*> load_params_;  // the parameters of the last load's buffers
};

}  // namespace tessera
