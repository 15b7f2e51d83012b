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
}

Tensor LinearLayer::forward(const Tensor& x, const MicrobatchContext& ctx) {
  const int64_t N = x.dim(0);
  Saved s;
  s.x = x;
  s.pre = Tensor::empty({N, out_});
  if (split_ == TpSplit::Row) {
    // Partial sums over this rank's input slice; the replicated bias is added once, after.
    k::linear_forward(s.pre.f32(), x.f32(), weight_.value.f32(), nullptr, N, in_, out_);
    reduce_from_tp_forward(s.pre, tp_);
    k::bias_forward(s.pre.f32(), bias_.value.f32(), N, out_);
  } else {
    const Tensor h = split_ == TpSplit::Column ? copy_to_tp_forward(x, tp_) : x;
    k::linear_forward(s.pre.f32(), h.f32(), weight_.value.f32(), bias_.value.f32(), N, in_, out_);
  }
  Tensor y = Tensor::empty({N, out_});
  if (activation_ == Activation::Gelu) {
    k::gelu_forward(y.f32(), s.pre.f32(), N * out_);
  } else {
    k::relu_forward(y.f32(), s.pre.f32(), N * out_);
  }
  if (ctx.training) stash_.put(ctx.microbatch, std::move(s));
  return y;
}

Tensor LinearLayer::backward(const Tensor& dy, const MicrobatchContext& ctx) {
  Saved s = stash_.take(ctx.microbatch);
  const int64_t N = s.x.dim(0);
  Tensor dpre = Tensor::empty({N, out_});
  if (activation_ == Activation::Gelu) {
    k::gelu_backward(dpre.f32(), s.pre.f32(), dy.f32(), N * out_);
  } else {
    k::relu_backward(dpre.f32(), s.pre.f32(), dy.f32(), N * out_);
  }
  Tensor dx = Tensor::empty({N, in_});
  if (split_ == TpSplit::Row) {
    k::bias_backward(bias_.grad.f32(), dpre.f32(), N, out_);
    const Tensor d = reduce_from_tp_backward(dpre, tp_);
    k::linear_backward(dx.f32(), weight_.grad.f32(), nullptr, d.f32(), s.x.f32(), weight_.value.f32(),
                       N, in_, out_);
    return dx;
  }
  k::linear_backward(dx.f32(), weight_.grad.f32(), bias_.grad.f32(), dpre.f32(), s.x.f32(),
                     weight_.value.f32(), N, in_, out_);
  if (split_ == TpSplit::Column) copy_to_tp_backward(dx, tp_);
  return dx;
}

}  // namespace tessera
