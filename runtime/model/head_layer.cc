// Head layer: final norm, vocab-parallel logits and cross-entropy.
#include "runtime/model/head_layer.h"

#include <algorithm>

#include "kernels/cross_entropy.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "runtime/model/embedding_layer.h"

namespace tessera {

namespace k = kernels::cpu;

HeadLayer::HeadLayer(std::string name, HeadOptions options, int64_t vocab, int64_t width,
                     float init_std, uint64_t seed, TpGroup tp)
    : name_(std::move(name)), options_(std::move(options)), vocab_(vocab), width_(width), tp_(tp) {
  const int64_t vpad = padded_vocab(vocab, tp.size);
  vocab_local_ = vpad / tp.size;
  vocab_start_ = vocab_local_ * tp.rank;
  // Columns of this shard that are real vocabulary entries; the rest is padding.
  valid_local_ = std::clamp<int64_t>(vocab - vocab_start_, 0, vocab_local_);
  const auto rep = ShardSpec::replicated();
  if (!options_.norm_name.empty()) {
    norm_w_ = make_parameter(options_.norm_name + ".weight", {width}, rep, tp.rank, tp.size, 0, 1,
                             seed, false);
    if (!options_.rms_norm) {
      norm_b_ = make_parameter(options_.norm_name + ".bias", {width}, rep, tp.rank, tp.size, 0, 0,
                               seed, false);
    }
  }
  if (tp.sequence_sharded() && norm_w_.value.defined()) {
    norm_w_.sequence_parallel_grad = norm_b_.sequence_parallel_grad = true;
  }
  weight_ = make_parameter(options_.weight_name, {vpad, width}, ShardSpec::split(0), tp.rank,
                           tp.size, init_std, 0, seed, true);
  if (!options_.bias_name.empty()) {
    bias_ = make_parameter(options_.bias_name, {vpad}, ShardSpec::split(0), tp.rank, tp.size, 0, 0,
                           seed, false);
  }
}

// The input rows are this rank's sequence shard with sequence parallelism; the logits and the
// loss cover all B * T rows on every rank (split by vocabulary instead).
Tensor HeadLayer::forward(const Tensor& x, const MicrobatchContext& ctx) {
  const int64_t Ns = x.dim(0), N = ctx.targets.numel(), C = width_, V = vocab_local_;
  Saved s;
  s.x = x;
  s.normed = x;
  if (norm_w_.value.defined()) {
    s.normed = Tensor::empty({Ns, C});
    s.rstd = Tensor::empty({Ns});
    if (options_.rms_norm) {
      k::rmsnorm_forward(s.normed.f32(), s.rstd.f32(), x.f32(), norm_w_.value.f32(), Ns, C, options_.norm_eps);
    } else {
      s.mean = Tensor::empty({Ns});
      k::layernorm_forward(s.normed.f32(), s.mean.f32(), s.rstd.f32(), x.f32(), norm_w_.value.f32(),
                           norm_b_.value.f32(), Ns, C);
    }
  }
  const Tensor h = enter_tp_region_forward(s.normed, tp_);
  s.input = h;
  s.logits = Tensor::empty({N, V});
  k::linear_forward(s.logits.f32(), h.f32(), projection_->value.f32(),
                    bias_.value.defined() ? bias_.value.f32() : nullptr, N, C, V);
  s.row_max = Tensor::empty({N});
  k::cross_entropy_row_max(s.row_max.f32(), s.logits.f32(), N, V, valid_local_);
  tp_all_reduce(s.row_max, ReduceOp::Max, tp_);
  // sum_exp and the target logit are reduced together in one [2, N] buffer.
  Tensor sums = Tensor::empty({2, N});
  k::cross_entropy_partial_sums(sums.f32(), sums.f32() + N, s.logits.f32(), s.row_max.f32(),
                                ctx.targets.i32(), N, V, valid_local_, vocab_start_);
  tp_all_reduce(sums, ReduceOp::Sum, tp_);
  s.sum_exp = sums.narrow(0, 1).view({N});
  Tensor losses = Tensor::empty({N});
  k::cross_entropy_loss(losses.f32(), s.row_max.f32(), s.sum_exp.f32(), sums.f32() + N, N);
  double total = 0;
  for (int64_t i = 0; i < N; ++i) total += losses.f32()[i];
  Tensor loss = Tensor::full({1}, static_cast<float>(total / static_cast<double>(N)));
  last_logits_ = s.logits;
  if (ctx.training) stash_.put(ctx.microbatch, std::move(s));
  return loss;
}

Tensor HeadLayer::backward(const Tensor&, const MicrobatchContext& ctx) {
  Saved s = stash_.take(ctx.microbatch);
  const int64_t Ns = s.x.dim(0), N = ctx.targets.numel(), C = width_, V = vocab_local_;
  // d(mean loss)/d(row loss) = 1/N, times the microbatch's weight in the total loss.
  const Tensor dloss = Tensor::full({N}, ctx.loss_scale / static_cast<float>(N));
  Tensor dlogits = Tensor::empty({N, V});
  k::cross_entropy_backward(dlogits.f32(), s.logits.f32(), s.row_max.f32(), s.sum_exp.f32(),
                            ctx.targets.i32(), dloss.f32(), N, V, valid_local_, vocab_start_);
  Tensor dh = Tensor::empty({N, C});
  k::linear_backward(dh.f32(), projection_->grad.f32(), bias_.value.defined() ? bias_.grad.f32() : nullptr,
                     dlogits.f32(), s.input.f32(), projection_->value.f32(), N, C, V);
  const Tensor dnormed = enter_tp_region_backward(dh, tp_);
  if (!norm_w_.value.defined()) return dnormed;
  Tensor dx = Tensor::empty({Ns, C});
  if (options_.rms_norm) {
    k::rmsnorm_backward(dx.f32(), norm_w_.grad.f32(), dnormed.f32(), s.x.f32(), norm_w_.value.f32(), s.rstd.f32(),
                        Ns, C);
  } else {
    k::layernorm_backward(dx.f32(), norm_w_.grad.f32(), norm_b_.grad.f32(), dnormed.f32(), s.x.f32(),
                          norm_w_.value.f32(), s.mean.f32(), s.rstd.f32(), Ns, C);
  }
  return dx;
}

void HeadLayer::tie_weight(Parameter* table) {
  TESSERA_CHECK(table->value.shape() == weight_.value.shape() && table->global_shape == weight_.global_shape,
                "{}: cannot tie the head to {}: shapes differ", name_, table->name);
  projection_ = table;
  weight_ = Parameter();
}

std::vector<Parameter*> HeadLayer::parameters() {
  std::vector<Parameter*> ps;
  if (norm_w_.value.defined()) ps.push_back(&norm_w_);
  if (norm_b_.value.defined()) ps.push_back(&norm_b_);
  if (projection_ == &weight_) ps.push_back(&weight_);
  if (bias_.value.defined()) ps.push_back(&bias_);
  return ps;
}

}  // namespace tessera
