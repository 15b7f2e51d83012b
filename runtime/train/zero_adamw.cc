// ZeRO-1 sharded AdamW.
#include "runtime/train/zero_adamw.h"

#include <algorithm>
#include <cmath>

#include "kernels/adamw.h"
#include "kernels/grad_clip.h"
#include "kernels/residual.h"
#include "runtime/compression/mask.h"

namespace tessera {

ZeroAdamW::ZeroAdamW(FlatParameters& flat, Communicator& dp, const OptimizerConfig& config)
    : flat_(flat), dp_(dp), config_(config) {
  const int64_t shard = flat.numel() / dp.size();
  lo_ = shard * dp.rank();
  hi_ = lo_ + shard;
  m_ = Tensor::zeros({shard});
  v_ = Tensor::zeros({shard});
}

template <typename F>
void ZeroAdamW::for_each_piece(F f) const {
  for (const FlatSegment& s : flat_.segments()) {
    const int64_t b = std::max(lo_, s.offset), e = std::min(hi_, s.offset + s.numel);
    if (b < e) f(s, b, e);
  }
}

double ZeroAdamW::clip(Tensor& shard_grads, double max_norm, const TpGroup& tp, Communicator* pp) {
  double sq = 0;
  for_each_piece([&](const FlatSegment& s, int64_t b, int64_t e) {
    // A tp-replicated parameter has the same gradient on every tp rank: count it once.
    if (s.param->shard.kind == ShardSpec::Kind::Replicated && tp.rank != 0) return;
    sq += kernels::cpu::sum_squares(shard_grads.f32() + (b - lo_), e - b);
  });
  Tensor t = Tensor::full({1}, static_cast<float>(sq));
  dp_.all_reduce(t, ReduceOp::Sum);
  tp_all_reduce(t, ReduceOp::Sum, tp);
  if (pp != nullptr && pp->size() > 1) pp->all_reduce(t, ReduceOp::Sum);
  const double norm = std::sqrt(static_cast<double>(t.f32()[0]));
  const float coeff = kernels::cpu::clip_coefficient(norm, static_cast<float>(max_norm));
  if (coeff < 1.f) kernels::cpu::scale(shard_grads.f32(), coeff, shard_grads.numel());
  return norm;
}

void ZeroAdamW::gather_moments(Tensor& exp_avg, Tensor& exp_avg_sq) {
  exp_avg = Tensor::empty({flat_.numel()});
  exp_avg_sq = Tensor::empty({flat_.numel()});
  dp_.all_gather(m_, exp_avg);
  dp_.all_gather(v_, exp_avg_sq);
}

void ZeroAdamW::scatter_moments(const Tensor& exp_avg, const Tensor& exp_avg_sq) {
  m_.copy_from(exp_avg.narrow(lo_, hi_ - lo_));
  v_.copy_from(exp_avg_sq.narrow(lo_, hi_ - lo_));
}

void ZeroAdamW::step(const Tensor& shard_grads, double lr) {
  ++step_;
  float* values = flat_.values().f32();
  for_each_piece([&](const FlatSegment& s, int64_t b, int64_t e) {
    const int64_t i = b - lo_;
    // The piece [b, e) of the parameter starts at element b - s.offset of its mask.
    const float* mask = s.param->mask.defined() ? s.param->mask.f32() + (b - s.offset) : nullptr;
    if (mask) apply_mask(shard_grads.f32() + i, mask, e - b);
    kernels::cpu::adamw_update(values + b, shard_grads.f32() + i, m_.f32() + i, v_.f32() + i, e - b,
                               static_cast<float>(lr), static_cast<float>(config_.beta1),
                               static_cast<float>(config_.beta2), static_cast<float>(config_.eps),
                               s.param->weight_decay ? static_cast<float>(config_.weight_decay) : 0.f,
                               step_);
    if (mask) {
      for (float* x : {values + b, m_.f32() + i, v_.f32() + i}) apply_mask(x, mask, e - b);
    }
  });
  Tensor own = flat_.values().narrow(lo_, hi_ - lo_);
  dp_.all_gather(own, flat_.values());
}

}  // namespace tessera
