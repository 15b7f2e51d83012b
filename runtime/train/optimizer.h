// AdamW over a model's parameters (fp32 moments per parameter shard) and the learning-rate
// schedule (linear warm-up, cosine decay to min_lr, as nanoGPT).
#pragma once

#include <vector>

#include "core/config.h"
#include "runtime/model/parameter.h"

namespace tessera {

double learning_rate(const OptimizerConfig& opt, int64_t step, int64_t max_steps);

class AdamW {
 public:
  AdamW(std::vector<Parameter*> params, const OptimizerConfig& config);
  // One update of every parameter from its grad with learning rate lr.
  void step(double lr);
  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t steps) { step_ = steps; }
  // The moments of parameter i (in construction order), sharing storage with the optimizer.
  const Tensor& exp_avg(size_t i) const { return states_.at(i).m; }
  const Tensor& exp_avg_sq(size_t i) const { return states_.at(i).v; }
  int64_t state_bytes() const;

 private:
  struct State {
    Parameter* param;
    Tensor m, v;
  };
  OptimizerConfig config_;
  std::vector<State> states_;
  int64_t step_ = 0;
};

}  // namespace tessera
