// Linear + activation forward/backward.
#include "runtime/model/linear_layer.h"

#include "kernels/gelu.h"
#include "kernels/matmul.h"
#include "kernels/relu.h"

namespace tessera {

namespace k = kernels::cpu;

LinearLayer::LinearLayer(std::string name, int64_t in_features, int64_t out_features,
                         Activation activation, float init_std, uint64_t seed, TpGroup tp)
    : name_(std::move(name)), in_(in_features), out_(out_features), activation_(activation), tp_(tp) {
  weight_ = make_parameter(name_ + ".weight", {out_, in_}, ShardSpec::replicated(), tp.rank, tp.size,
                           init_std, 0, seed, true);
  bias_ = make_parameter(name_ + ".bias", {out_}, ShardSpec::replicated(), tp.rank, tp.size, 0, 0,
                         seed, false);
}

Tensor LinearLayer::forward(const Tensor& x, const MicrobatchContext& ctx) {
  const int64_t N = x.dim(0);
  Saved s;
  s.x = x;
  s.pre = Tensor::empty({N, out_});
  k::linear_forward(s.pre.f32(), x.f32(), weight_.value.f32(), bias_.value.f32(), N, in_, out_);
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
  k::linear_backward(dx.f32(), weight_.grad.f32(), bias_.grad.f32(), dpre.f32(), s.x.f32(),
                     weight_.value.f32(), N, in_, out_);
  return dx;
}

}  // namespace tessera
