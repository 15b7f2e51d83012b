// ZeRO stage 1: AdamW whose moments exist only for this rank's 1/dp shard of the flat
// parameter buffer. Each rank updates its shard from the reduce-scattered gradient, then the
// shards are all-gathered so every replica holds the full updated parameters.
#pragma once

#include "runtime/comm/communicator.h"
#include "core/config.h"
#include "runtime/model/tensor_parallel.h"
#include "runtime/train/flat_parameters.h"
#include "runtime/train/grad_sync.h"
#include "runtime/train/optimizer.h"

namespace tessera {

class ZeroAdamW : public Optimizer {
 public:
  // The gradients are those sync reduce-scatters (sync.shard_grads()); flat, sync and dp are
  // borrowed and must outlive the optimizer.
  // The norm, the clip and the update run on ops (borrowed), the backend of the parameters' device.
  ZeroAdamW(FlatParameters& flat, GradientSync& sync, Communicator& dp, const OptimizerConfig& config, Backend& ops);

  // The squared global norm from the shards (reduced over dp, tp and pp; tp-replicated parameters
  // counted once).
  Tensor squared_grad_norm(const TpGroup& tp, Communicator* pp) override;
  // Scales this rank's gradient shard (the only gradients it updates from).
  bool scale_gradients(float factor) override { return scale_and_check_finite(ops_, {sync_.shard_grads()}, factor); }
  // Updates this rank's shard from its gradient shard and all-gathers the parameters.
  void step(double lr, float grad_scale) override;
  int64_t state_bytes() const override { return static_cast<int64_t>(m_.nbytes() + v_.nbytes()); }
  int64_t steps_taken() const override { return step_; }
  void set_steps_taken(int64_t steps) override { step_ = steps; }
  int zero_stage() const override { return 1; }
  // The moments over the whole flat buffer, all-gathered from the shards when gather (collective
  // over dp), viewed per parameter; load_moments keeps this rank's range of them.
  CheckpointMoments checkpoint_moments(const std::vector<Parameter*>& params, bool gather) override;
  void load_moments(const CheckpointMoments& loaded) override;
  // Each parameter's part of this rank's shard, as views of the shard buffers.
  std::optional<std::vector<OwnedRange>> owned_ranges(const std::vector<Parameter*>& params) override;

 private:
  // Calls f(segment, begin, end) for each piece of a parameter inside this rank's shard,
  // with begin/end in flat coordinates.
  template <typename F>
  void for_each_piece(F f) const;

  FlatParameters& flat_;
  GradientSync& sync_;
  Communicator& dp_;
  OptimizerConfig config_;
  Backend& ops_;
  int64_t lo_ = 0, hi_ = 0;
  Tensor m_, v_;
  int64_t step_ = 0;
};

}  // namespace tessera
