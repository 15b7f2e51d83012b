// AdamW, the optimizer factory and the learning-rate schedule.
#include "runtime/train/optimizer.h"

#include <cmath>

#include "kernels/residual.h"
#include "runtime/compression/mask.h"
#include "runtime/train/grad_norm.h"
#include "runtime/train/zero_adamw.h"

namespace tessera {

double learning_rate(const OptimizerConfig& opt, int64_t step, int64_t max_steps) {
  const int64_t decay = opt.decay_steps > 0 ? opt.decay_steps : max_steps;
  if (step < opt.warmup_steps) {
    return opt.lr * static_cast<double>(step + 1) / static_cast<double>(opt.warmup_steps + 1);
  }
  if (step >= decay) return opt.min_lr;
  const double ratio = static_cast<double>(step - opt.warmup_steps) /
                       static_cast<double>(std::max<int64_t>(1, decay - opt.warmup_steps));
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return opt.min_lr + coeff * (opt.lr - opt.min_lr);
}

AdamWStep adamw_step(const OptimizerConfig& config, double lr, bool weight_decay, int64_t step, float grad_scale) {
  return {static_cast<float>(lr),
          static_cast<float>(config.beta1),
          static_cast<float>(config.beta2),
          static_cast<float>(config.eps),
          weight_decay ? static_cast<float>(config.weight_decay) : 0.f,
          step,
          grad_scale};
}

AdamW::AdamW(std::vector<Parameter*> params, const OptimizerConfig& config, Backend& ops)
    : config_(config), ops_(ops) {
  for (Parameter* p : params) {
    states_.push_back({p, Tensor::zeros(p->value.shape(), DType::F32, ops.device()),
                       Tensor::zeros(p->value.shape(), DType::F32, ops.device())});
  }
}

Tensor AdamW::squared_grad_norm(const TpGroup& tp, Communicator* pp) {
  std::vector<Parameter*> params;
  for (const State& s : states_) params.push_back(s.param);
  return squared_norm(counted_gradients(params, tp), nullptr, tp, pp, ops_);
}

bool scale_and_check_finite(Backend& ops, std::vector<Tensor> grads, float factor) {
  std::vector<const Tensor*> views;
  for (Tensor& g : grads) {
    ops.scale(g, factor);
    views.push_back(&g);
  }
  // Summed in double, the squares of fp32 values (< 1.2e77) cannot overflow: the sums are finite
  // exactly when every element is, and a GPU reads them back in one wait.
  for (double s : ops.sum_squares(views)) {
    if (!std::isfinite(s)) return false;
  }
  return true;
}

bool AdamW::scale_gradients(float factor) {
  std::vector<Tensor> grads;
  for (const State& s : states_) grads.push_back(s.param->grad);
  return scale_and_check_finite(ops_, std::move(grads), factor);
}

void AdamW::step(double lr, float grad_scale) {
  ++step_;
  for (State& s : states_) {
    Parameter& p = *s.param;
    const int64_t n = p.value.numel();
    if (p.mask.defined()) apply_mask(p.grad.f32(), p.mask.f32(), n);
    ops_.adamw_update(p.value, p.grad, s.m, s.v, adamw_step(config_, lr, p.weight_decay, step_, grad_scale));
    if (p.mask.defined()) {
      for (Tensor* t : {&p.value, &s.m, &s.v}) apply_mask(t->f32(), p.mask.f32(), n);
    }
  }
}

int64_t AdamW::state_bytes() const {
  int64_t n = 0;
  for (const State& s : states_) n += static_cast<int64_t>(s.m.nbytes() + s.v.nbytes());
  return n;
}

CheckpointMoments AdamW::checkpoint_moments(const std::vector<Parameter*>& params, bool) {
  TESSERA_CHECK(params.size() == states_.size(), "AdamW: moments of {} parameters asked, {} held", params.size(),
                states_.size());
  CheckpointMoments out;
  for (size_t i = 0; i < params.size(); ++i) {
    TESSERA_CHECK(params[i] == states_[i].param, "AdamW: parameter {} is not the one the optimizer holds", i);
    out.per_param.push_back({states_[i].m, states_[i].v});
  }
  return out;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, int zero_stage, std::vector<Parameter*> params,
                                          FlatParameters* flat, GradientSync* sync, Communicator* dp, Backend& ops) {
  if (zero_stage == 1 && dp != nullptr && dp->size() > 1) {
    TESSERA_CHECK(flat != nullptr && sync != nullptr, "ZeRO-1 needs the flat parameters and the gradient sync");
    return std::make_unique<ZeroAdamW>(*flat, *sync, *dp, config, ops);
  }
  return std::make_unique<AdamW>(std::move(params), config, ops);
}

}  // namespace tessera
