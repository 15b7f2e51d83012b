// ZeRO stage 1: AdamW whose moments exist only for this rank's 1/dp shard of the flat
// parameter buffer. Each rank updates its shard from the reduce-scattered gradient, then the
// shards are all-gathered so every replica holds the full updated parameters.
#pragma once

#include "runtime/comm/communicator.h"
#include "core/config.h"
#include "runtime/model/tensor_parallel.h"
#include "runtime/train/flat_parameters.h"

namespace tessera {

class ZeroAdamW {
 public:
  ZeroAdamW(FlatParameters& flat, Communicator& dp, const OptimizerConfig& config);

  // Global gradient norm from the shards (dp and tp reduced; tp-replicated parameters counted
  // once) and clipping of this rank's shard; returns the norm before clipping.
  double clip(Tensor& shard_grads, double max_norm, const TpGroup& tp, Communicator* pp = nullptr);
  // Updates this rank's shard from shard_grads and all-gathers the parameters.
  void step(const Tensor& shard_grads, double lr);
  int64_t state_bytes() const { return static_cast<int64_t>(m_.nbytes() + v_.nbytes()); }
  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t steps) { step_ = steps; }
  // The moments over the whole flat buffer, all-gathered from the shards (collective over
  // dp), for checkpoints; and the inverse, keeping this rank's range of full moments.
  void gather_moments(Tensor& exp_avg, Tensor& exp_avg_sq);
  void scatter_moments(const Tensor& exp_avg, const Tensor& exp_avg_sq);

 private:
  // Calls f(segment, begin, end) for each piece of a parameter inside this rank's shard,
  // with begin/end in flat coordinates.
  template <typename F>
  void for_each_piece(F f) const;

  FlatParameters& flat_;
  Communicator& dp_;
  OptimizerConfig config_;
  int64_t lo_ = 0, hi_ = 0;
  Tensor m_, v_;
  int64_t step_ = 0;
};

}  // namespace tessera
