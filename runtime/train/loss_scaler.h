// Dynamic loss scaling for fp16 training, as Megatron and DeepSpeed do it. fp16 cannot hold
// gradients below ~6e-8, so the loss (and with it every gradient) is multiplied by a scale S.
// A step whose gradients overflowed (inf/NaN) is skipped and S halved; after `growth_interval`
// good steps in a row S doubles. The state is saved in checkpoints, so a resume is exact.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

namespace tessera {

struct LossScalerConfig {
  double initial_scale = 65536.0;  // 2^16, Megatron's default
  int growth_interval = 1000;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  double min_scale = 1.0;
  // Consecutive overflowing steps after which training stops with an error instead of skipping
  // forever (a model that overflows at any scale has a real problem).
  int max_consecutive_skips = 20;
};

class LossScaler {
 public:
  explicit LossScaler(LossScalerConfig config = {});
  double scale() const { return scale_; }
  // Records a step's outcome: returns true when its update must be skipped (found_inf), after
  // halving the scale; throws tessera::Error after max_consecutive_skips overflows in a row.
  bool update(bool found_inf, int64_t step);
  int64_t skipped_steps() const { return skipped_; }

  nlohmann::json to_json() const;
  void load_json(const nlohmann::json& state);

 private:
  LossScalerConfig config_;
  double scale_;
  int good_steps_ = 0;         // since the last overflow or growth
  int consecutive_skips_ = 0;
  int64_t skipped_ = 0;        // overflowed steps in this run and those it resumed
};

}  // namespace tessera
