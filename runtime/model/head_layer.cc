// Head layer: final norm, vocab-parallel logits and cross-entropy, through the Compute seam. The
// logits and everything after them are fp32 in every precision.
#include "runtime/model/head_layer.h"

#include <algorithm>

#include "runtime/compute/compute.h"
#include "runtime/model/embedding_layer.h"

namespace tessera {

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
  const Compute& m = ctx.math();
  Backend& ops = m.ops();
  const int64_t Ns = x.dim(0), N = ctx.targets.numel(), C = width_, V = vocab_local_;
  Saved s;
  s.x = x;
  s.normed = x;
  if (norm_w_.value.defined()) {
    s.normed = m.empty({Ns, C});
    s.rstd = m.empty({Ns});
    if (options_.rms_norm) {
      ops.rmsnorm_forward(s.normed, s.rstd, x, norm_w_.value, options_.norm_eps);
    } else {
      s.mean = m.empty({Ns});
      ops.layernorm_forward(s.normed, s.mean, s.rstd, x, norm_w_.value, norm_b_.value);
    }
  }
  s.input = enter_tp_region_forward(m.to_compute(s.normed), tp_);
  s.logits = m.empty({N, V});
  m.linear_forward(s.logits, s.input, *projection_, bias_.value.defined() ? &bias_ : nullptr);
  s.row_max = m.empty({N});
  ops.cross_entropy_row_max(s.row_max, s.logits, valid_local_);
  tp_all_reduce(s.row_max, ReduceOp::Max, tp_);
  // sum_exp and the target logit are reduced together in one [2, N] buffer.
  Tensor sums = m.empty({2, N});
  Tensor sum_exp = sums.narrow(0, 1).view({N}), target_logit = sums.narrow(1, 1).view({N});
  ops.cross_entropy_partial_sums(sum_exp, target_logit, s.logits, s.row_max, ctx.targets.view({N}), valid_local_,
                                 vocab_start_);
  tp_all_reduce(sums, ReduceOp::Sum, tp_);
  s.sum_exp = sum_exp;
  Tensor losses = m.empty({N});
  ops.cross_entropy_loss(losses, s.row_max, s.sum_exp, target_logit);
  Tensor loss;
  if (m.device().is_cpu()) {
    double total = 0;
    for (int64_t i = 0; i < N; ++i) total += losses.f32()[i];
    loss = Tensor::full({1}, static_cast<float>(total / static_cast<double>(N)));
  } else {
    // On a GPU the mean stays there (the column sum of a bias gradient, in fp32), so the trainer
    // reads all of a step's microbatch losses in one host wait.
    loss = Tensor::zeros({1}, DType::F32, m.device());
    ops.bias_backward(loss, losses.view({N, 1}));
    ops.scale(loss, 1.f / static_cast<float>(N));
  }
  last_logits_ = s.logits;
  if (ctx.training) stash_.put(ctx.microbatch, std::move(s));
  return loss;
}

Tensor HeadLayer::backward(const Tensor&, const MicrobatchContext& ctx) {
  const Compute& m = ctx.math();
  Backend& ops = m.ops();
  Saved s = stash_.take(ctx.microbatch);
  const int64_t Ns = s.x.dim(0), N = ctx.targets.numel(), C = width_, V = vocab_local_;
  // d(mean loss)/d(row loss) = 1/N, times the microbatch's weight in the total loss.
  const Tensor dloss = m.full({N}, ctx.loss_scale / static_cast<float>(N));
  Tensor dlogits = m.empty({N, V});
  ops.cross_entropy_backward(dlogits, s.logits, s.row_max, s.sum_exp, ctx.targets.view({N}), dloss, valid_local_,
                             vocab_start_);
  Tensor dh = m.empty({N, C});
  m.linear_backward(&dh, *projection_, bias_.value.defined() ? &bias_ : nullptr, dlogits, s.input);
  const Tensor dnormed = enter_tp_region_backward(dh, tp_);
  if (!norm_w_.value.defined()) return dnormed;
  Tensor dx = m.empty({Ns, C});
  if (options_.rms_norm) {
    ops.rmsnorm_backward(dx, norm_w_.grad, dnormed, s.x, norm_w_.value, s.rstd);
  } else {
    ops.layernorm_backward(dx, norm_w_.grad, norm_b_.grad, dnormed, s.x, norm_w_.value, s.mean, s.rstd);
  }
  return dx;
}

void HeadLayer::tie_weight(Parameter* table) {
  // By the global shape and sharding: ZeRO-3 may have sharded the table's value already.
  TESSERA_CHECK(table->global_shape == weight_.global_shape && table->shard.kind == weight_.shard.kind &&
                    table->shard.axis == weight_.shard.axis,
                "{}: cannot tie the head to {}: shapes or sharding differ", name_, table->name);
  projection_ = table;
  weight_ = Parameter();
}

std::vector<Parameter*> HeadLayer::borrowed_parameters() {
  if (projection_ == &weight_) return {};
  return {projection_};
}

std::vector<Parameter*> HeadLayer::parameters() {
  // By name, not by value: ZeRO-3 frees the values between uses, and the list must not change.
  std::vector<Parameter*> ps;
  if (!norm_w_.name.empty()) ps.push_back(&norm_w_);
  if (!norm_b_.name.empty()) ps.push_back(&norm_b_);
  if (projection_ == &weight_) ps.push_back(&weight_);
  if (!bias_.name.empty()) ps.push_back(&bias_);
  return ps;
}

}  // namespace tessera
