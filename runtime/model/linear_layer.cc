// Linear + activation forward/backward through the Compute seam. The saved input is the GEMM
// input in the compute dtype.
#include "runtime/model/linear_layer.h"

#include "runtime/compute/compute.h"

namespace tessera {

LinearLayer::LinearLayer(std::string name, int64_t in_features, int64_t out_features,
                         Activation activation, TpSplit split, float init_std, uint64_t seed, TpGroup tp)
    : name_(std::move(name)), in_(in_features), out_(out_features), activation_(activation),
      split_(split), tp_(tp) {
  ShardSpec weight_spec = ShardSpec::replicated(), bias_spec = ShardSpec::replicated();
  if (split == TpSplit::Column) {
    weight_spec = bias_spec = ShardSpec::split(0);
    out_ /= tp.size;
  } else if (split == TpSplit::Row) {
    weight_spec = ShardSpec::split(1);
    in_ /= tp.size;
  }
  weight_ = make_parameter(name_ + ".weight", {out_features, in_features}, weight_spec, tp.rank,
                           tp.size, init_std, 0, seed, true);
  bias_ = make_parameter(name_ + ".bias", {out_features}, bias_spec, tp.rank, tp.size, 0, 0, seed,
                         false);
  // With sequence parallelism these see only this rank's rows: their gradients are partial.
  if (tp.sequence_sharded() && split == TpSplit::Row) bias_.sequence_parallel_grad = true;
  if (tp.sequence_sharded() && split == TpSplit::Replicated) {
    weight_.sequence_parallel_grad = bias_.sequence_parallel_grad = true;
  }
}

Tensor LinearLayer::forward(const Tensor& x, const MicrobatchContext& ctx) {
  const Compute& m = ctx.math();
  Saved s;
  if (split_ == TpSplit::Row) {
    // Partial sums over this rank's input slice; the replicated bias is added once, after.
    s.x = m.to_compute(x);
    Tensor partial = m.empty({x.dim(0), out_});
    m.linear_forward(partial, s.x, weight_, nullptr);
    s.pre = exit_tp_region_forward(partial, tp_);
    m.ops().bias_forward(s.pre, bias_.value);
  } else {
    // A Column layer keeps its (sequence-sharded) input and gathers it again in backward.
    s.x = m.to_compute(x);
    const Tensor h = split_ == TpSplit::Column ? enter_tp_region_forward(s.x, tp_) : s.x;
    s.pre = m.empty({h.dim(0), out_});
    m.linear_forward(s.pre, h, weight_, &bias_);
  }
  Tensor y = m.empty(s.pre.shape());
  if (activation_ == Activation::Gelu) {
    m.ops().gelu_forward(y, s.pre);
  } else {
    m.ops().relu_forward(y, s.pre);
  }
  if (ctx.training) stash_.put(ctx.microbatch, std::move(s));
  return y;
}

Tensor LinearLayer::backward(const Tensor& dy, const MicrobatchContext& ctx) {
  const Compute& m = ctx.math();
  Saved s = stash_.take(ctx.microbatch);
  Tensor dpre = m.empty(s.pre.shape());
  if (activation_ == Activation::Gelu) {
    m.ops().gelu_backward(dpre, s.pre, dy);
  } else {
    m.ops().relu_backward(dpre, s.pre, dy);
  }
  if (split_ == TpSplit::Row) {
    Tensor dx = m.empty(s.x.shape());
    m.ops().bias_backward(bias_.grad, dpre);
    const Tensor d = exit_tp_region_backward(dpre, tp_);
    m.linear_backward(&dx, weight_, nullptr, d, s.x);
    return dx;
  }
  if (split_ == TpSplit::Replicated) {
    Tensor dx = m.empty(s.x.shape());
    m.linear_backward(&dx, weight_, &bias_, dpre, s.x);
    return dx;
  }
  // Column: the input was entered into the tp region; its gradient leaves it.
  const Tensor h = enter_tp_region_forward(s.x, tp_);
  Tensor dh = m.empty(h.shape());
  m.linear_backward(&dh, weight_, &bias_, dpre, h);
  return enter_tp_region_backward(dh, tp_);
}

}  // namespace tessera
