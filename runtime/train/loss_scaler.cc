// Dynamic loss scaling: backoff on overflow, growth after a run of good steps.
#include "runtime/train/loss_scaler.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

LossScaler::LossScaler(LossScalerConfig config) : config_(config), scale_(config.initial_scale) {}

bool LossScaler::update(bool found_inf, int64_t step) {
  if (found_inf) {
    ++skipped_;
    ++consecutive_skips_;
    good_steps_ = 0;
    TESSERA_REQUIRE(consecutive_skips_ < config_.max_consecutive_skips,
                    "step {}: fp16 gradients overflowed in {} consecutive steps (loss scale now {}); stopping. "
                    "The model overflows fp16 at any scale: train in bf16 or fp32, or lower the learning rate",
                    step, consecutive_skips_, scale_);
    scale_ = std::max(scale_ * config_.backoff_factor, config_.min_scale);
    return true;
  }
  consecutive_skips_ = 0;
  if (++good_steps_ >= config_.growth_interval) {
    scale_ *= config_.growth_factor;
    good_steps_ = 0;
  }
  return false;
}

nlohmann::json LossScaler::to_json() const {
  return {{"scale", scale_}, {"good_steps", good_steps_}, {"skipped", skipped_}};
}

void LossScaler::load_json(const nlohmann::json& state) {
  scale_ = state.at("scale").get<double>();
  good_steps_ = state.at("good_steps").get<int>();
  skipped_ = state.at("skipped").get<int64_t>();
  consecutive_skips_ = 0;
}

}  // namespace tessera
