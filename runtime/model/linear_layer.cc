// Linear + activation forward/backward.
#include "runtime/model/linear_layer.h"

#include "kernels/bias.h"
#include "kernels/gelu.h"
#include "kernels/matmul.h"
#include "kernels/relu.h"

namespace tessera {

namespace k = kernels::cpu;

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
  Saved s;
  s.x = x;
  if (split_ == TpSplit::Row) {
    // Partial sums over this rank's input slice; the replicated bias is added once, after.
    Tensor partial = Tensor::empty({x.dim(0), out_});
    k::linear_forward(partial.f32(), x.f32(), weight_.value.f32(), nullptr, x.dim(0), in_, out_);
    s.pre = exit_tp_region_forward(partial, tp_);
    k::bias_forward(s.pre.f32(), bias_.value.f32(), s.pre.dim(0), out_);
  } else {
    const Tensor h = split_ == TpSplit::Column ? enter_tp_region_forward(x, tp_) : x;
    s.pre = Tensor::empty({h.dim(0), out_});
    k::linear_forward(s.pre.f32(), h.f32(), weight_.value.f32(), bias_.value.f32(), h.dim(0), in_, out_);
  }
  const int64_t n = s.pre.numel();
  Tensor y = Tensor::empty(s.pre.shape());
  if (activation_ == Activation::Gelu) {
    k::gelu_forward(y.f32(), s.pre.f32(), n);
  } else {
    k::relu_forward(y.f32(), s.pre.f32(), n);
  }
  if (ctx.training) stash_.put(ctx.microbatch, std::move(s));
  return y;
}

Tensor LinearLayer::backward(const Tensor& dy, const MicrobatchContext& ctx) {
  Saved s = stash_.take(ctx.microbatch);
  Tensor dpre = Tensor::empty(s.pre.shape());
  if (activation_ == Activation::Gelu) {
    k::gelu_backward(dpre.f32(), s.pre.f32(), dy.f32(), dpre.numel());
  } else {
    k::relu_backward(dpre.f32(), s.pre.f32(), dy.f32(), dpre.numel());
  }
  if (split_ == TpSplit::Row) {
    Tensor dx = Tensor::empty(s.x.shape());
    k::bias_backward(bias_.grad.f32(), dpre.f32(), dpre.dim(0), out_);
    const Tensor d = exit_tp_region_backward(dpre, tp_);
    k::linear_backward(dx.f32(), weight_.grad.f32(), nullptr, d.f32(), s.x.f32(), weight_.value.f32(),
                       s.x.dim(0), in_, out_);
    return dx;
  }
  if (split_ == TpSplit::Replicated) {
    Tensor dx = Tensor::empty(s.x.shape());
    k::linear_backward(dx.f32(), weight_.grad.f32(), bias_.grad.f32(), dpre.f32(), s.x.f32(),
                       weight_.value.f32(), s.x.dim(0), in_, out_);
    return dx;
  }
  // Column: the input was entered into the tp region; its gradient leaves it.
  const Tensor h = enter_tp_region_forward(s.x, tp_);
  Tensor dh = Tensor::empty(h.shape());
  k::linear_backward(dh.f32(), weight_.grad.f32(), bias_.grad.f32(), dpre.f32(), h.f32(),
                     weight_.value.f32(), h.dim(0), in_, out_);
  return enter_tp_region_backward(dh, tp_);
}

}  // namespace tessera
