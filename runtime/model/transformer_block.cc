// GPT transformer block forward/backward on the CPU kernels.
#include "runtime/model/transformer_block.h"

#include <cmath>

#include "kernels/attention.h"
#include "kernels/bias.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/residual.h"

namespace tessera {

namespace k = kernels::cpu;

TransformerBlock::TransformerBlock(std::string name, BlockShape s, int num_layers, float init_std,
                                   uint64_t seed, TpGroup tp)
    : name_(std::move(name)), shape_(s), tp_(tp) {
  TESSERA_CHECK(s.heads % tp.size == 0 && s.ffn % tp.size == 0 && s.hidden % s.heads == 0,
                "block {}: heads {} / ffn {} not divisible by tp {}", name_, s.heads, s.ffn, tp.size);
  heads_local_ = s.heads / tp.size;
  hidden_local_ = s.hidden / tp.size;
  ffn_local_ = s.ffn / tp.size;
  const int64_t C = s.hidden, F = s.ffn;
  // GPT-2: residual projections scaled by 1/sqrt(2 * layers) so the residual stream's variance
  // does not grow with depth.
  const float proj_std = init_std / std::sqrt(2.f * static_cast<float>(num_layers));
  auto param = [&](const char* suffix, Shape shape, ShardSpec spec, float std, float fill, bool wd) {
    return make_parameter(name_ + suffix, shape, spec, tp.rank, tp.size, std, fill, seed, wd);
  };
  const auto rep = ShardSpec::replicated();
  ln1_w_ = param(".ln_1.weight", {C}, rep, 0, 1, false);
  ln1_b_ = param(".ln_1.bias", {C}, rep, 0, 0, false);
  qkv_w_ = param(".attn.c_attn.weight", {3 * C, C}, ShardSpec::split(0, 3), init_std, 0, true);
  qkv_b_ = param(".attn.c_attn.bias", {3 * C}, ShardSpec::split(0, 3), 0, 0, false);
  attn_proj_w_ = param(".attn.c_proj.weight", {C, C}, ShardSpec::split(1), proj_std, 0, true);
  attn_proj_b_ = param(".attn.c_proj.bias", {C}, rep, 0, 0, false);
  ln2_w_ = param(".ln_2.weight", {C}, rep, 0, 1, false);
  ln2_b_ = param(".ln_2.bias", {C}, rep, 0, 0, false);
  fc_w_ = param(".mlp.c_fc.weight", {F, C}, ShardSpec::split(0), init_std, 0, true);
  fc_b_ = param(".mlp.c_fc.bias", {F}, ShardSpec::split(0), 0, 0, false);
  mlp_proj_w_ = param(".mlp.c_proj.weight", {C, F}, ShardSpec::split(1), proj_std, 0, true);
  mlp_proj_b_ = param(".mlp.c_proj.bias", {C}, rep, 0, 0, false);
}

Tensor TransformerBlock::forward(const Tensor& x, const MicrobatchContext& ctx) {
  const int64_t N = x.dim(0), C = shape_.hidden, Cl = hidden_local_, Fl = ffn_local_;
  const int64_t B = ctx.tokens.dim(0), T = N / B, D = C / shape_.heads;
  Saved s;
  s.B = B;
  s.T = T;
  s.x = x;
  s.ln1 = Tensor::empty({N, C});
  s.mean1 = Tensor::empty({N});
  s.rstd1 = Tensor::empty({N});
  k::layernorm_forward(s.ln1.f32(), s.mean1.f32(), s.rstd1.f32(), x.f32(), ln1_w_.value.f32(),
                       ln1_b_.value.f32(), N, C);
  const Tensor h1 = copy_to_tp_forward(s.ln1, tp_);
  s.qkv = Tensor::empty({N, 3 * Cl});
  k::linear_forward(s.qkv.f32(), h1.f32(), qkv_w_.value.f32(), qkv_b_.value.f32(), N, C, 3 * Cl);
  s.att = Tensor::empty({N, Cl});
  s.probs = Tensor::empty({B, heads_local_, T, T});
  k::attention_forward(s.att.f32(), s.probs.f32(), s.qkv.f32(), B, T, heads_local_, D);
  Tensor o = Tensor::empty({N, C});
  k::linear_forward(o.f32(), s.att.f32(), attn_proj_w_.value.f32(), nullptr, N, Cl, C);
  reduce_from_tp_forward(o, tp_);
  // The replicated bias is added once, after the partial sums are reduced.
  k::bias_forward(o.f32(), attn_proj_b_.value.f32(), N, C);
  s.x2 = Tensor::empty({N, C});
  k::residual_forward(s.x2.f32(), x.f32(), o.f32(), N * C);

  s.ln2 = Tensor::empty({N, C});
  s.mean2 = Tensor::empty({N});
  s.rstd2 = Tensor::empty({N});
  k::layernorm_forward(s.ln2.f32(), s.mean2.f32(), s.rstd2.f32(), s.x2.f32(), ln2_w_.value.f32(),
                       ln2_b_.value.f32(), N, C);
  const Tensor h2 = copy_to_tp_forward(s.ln2, tp_);
  s.fc = Tensor::empty({N, Fl});
  k::linear_forward(s.fc.f32(), h2.f32(), fc_w_.value.f32(), fc_b_.value.f32(), N, C, Fl);
  s.act = Tensor::empty({N, Fl});
  k::gelu_forward(s.act.f32(), s.fc.f32(), N * Fl);
  Tensor p = Tensor::empty({N, C});
  k::linear_forward(p.f32(), s.act.f32(), mlp_proj_w_.value.f32(), nullptr, N, Fl, C);
  reduce_from_tp_forward(p, tp_);
  k::bias_forward(p.f32(), mlp_proj_b_.value.f32(), N, C);
  Tensor y = Tensor::empty({N, C});
  k::residual_forward(y.f32(), s.x2.f32(), p.f32(), N * C);
  if (ctx.training) stash_.put(ctx.microbatch, std::move(s));
  return y;
}

Tensor TransformerBlock::backward(const Tensor& dy_in, const MicrobatchContext& ctx) {
  Saved s = stash_.take(ctx.microbatch);
  const int64_t N = s.x.dim(0), C = shape_.hidden, Cl = hidden_local_, Fl = ffn_local_;
  const int64_t D = C / shape_.heads;

  // MLP branch: y = x2 + proj(gelu(fc(ln2(x2)))).
  const Tensor dy = reduce_from_tp_backward(dy_in, tp_);
  k::bias_backward(mlp_proj_b_.grad.f32(), dy.f32(), N, C);
  Tensor dact = Tensor::empty({N, Fl});
  k::linear_backward(dact.f32(), mlp_proj_w_.grad.f32(), nullptr, dy.f32(), s.act.f32(),
                     mlp_proj_w_.value.f32(), N, Fl, C);
  Tensor dfc = Tensor::empty({N, Fl});
  k::gelu_backward(dfc.f32(), s.fc.f32(), dact.f32(), N * Fl);
  Tensor dln2 = Tensor::empty({N, C});
  k::linear_backward(dln2.f32(), fc_w_.grad.f32(), fc_b_.grad.f32(), dfc.f32(), s.ln2.f32(),
                     fc_w_.value.f32(), N, C, Fl);
  copy_to_tp_backward(dln2, tp_);
  Tensor dx2 = Tensor::empty({N, C});
  k::layernorm_backward(dx2.f32(), ln2_w_.grad.f32(), ln2_b_.grad.f32(), dln2.f32(), s.x2.f32(),
                        ln2_w_.value.f32(), s.mean2.f32(), s.rstd2.f32(), N, C);
  k::accumulate(dx2.f32(), dy_in.f32(), N * C);

  // Attention branch: x2 = x + proj(attn(qkv(ln1(x)))).
  const Tensor do_ = reduce_from_tp_backward(dx2, tp_);
  k::bias_backward(attn_proj_b_.grad.f32(), do_.f32(), N, C);
  Tensor datt = Tensor::empty({N, Cl});
  k::linear_backward(datt.f32(), attn_proj_w_.grad.f32(), nullptr, do_.f32(), s.att.f32(),
                     attn_proj_w_.value.f32(), N, Cl, C);
  Tensor dqkv = Tensor::empty({N, 3 * Cl});
  k::attention_backward(dqkv.f32(), datt.f32(), s.qkv.f32(), s.probs.f32(), s.B, s.T, heads_local_, D);
  Tensor dln1 = Tensor::empty({N, C});
  k::linear_backward(dln1.f32(), qkv_w_.grad.f32(), qkv_b_.grad.f32(), dqkv.f32(), s.ln1.f32(),
                     qkv_w_.value.f32(), N, C, 3 * Cl);
  copy_to_tp_backward(dln1, tp_);
  Tensor dx = Tensor::empty({N, C});
  k::layernorm_backward(dx.f32(), ln1_w_.grad.f32(), ln1_b_.grad.f32(), dln1.f32(), s.x.f32(),
                        ln1_w_.value.f32(), s.mean1.f32(), s.rstd1.f32(), N, C);
  k::accumulate(dx.f32(), dx2.f32(), N * C);
  return dx;
}

std::vector<Parameter*> TransformerBlock::parameters() {
  return {&ln1_w_, &ln1_b_, &qkv_w_, &qkv_b_, &attn_proj_w_, &attn_proj_b_,
          &ln2_w_, &ln2_b_, &fc_w_, &fc_b_, &mlp_proj_w_, &mlp_proj_b_};
}

}  // namespace tessera
