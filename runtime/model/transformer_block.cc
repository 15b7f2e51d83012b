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
                                   uint64_t seed, TpGroup tp, bool recompute_attention)
    : name_(std::move(name)), shape_(s), tp_(tp), recompute_attention_(recompute_attention) {
  TESSERA_CHECK(s.heads % tp.size == 0 && s.ffn % tp.size == 0, "block {}: heads {} / ffn {} not divisible by tp {}",
                name_, s.heads, s.ffn, tp.size);
  TESSERA_CHECK(s.head_dim > 0 || s.hidden % s.heads == 0, "block {}: hidden {} not divisible by heads {}", name_,
                s.hidden, s.heads);
  head_dim_ = s.head_dim > 0 ? s.head_dim : s.hidden / s.heads;
  heads_local_ = s.heads / tp.size;
  attn_local_ = heads_local_ * head_dim_;
  ffn_local_ = s.ffn / tp.size;
  const int64_t C = s.hidden, F = s.ffn, A = s.heads * head_dim_;
  // GPT-2: residual projections scaled by 1/sqrt(2 * layers) so the residual stream's variance
  // does not grow with depth.
  const float proj_std = init_std / std::sqrt(2.f * static_cast<float>(num_layers));
  auto param = [&](const char* suffix, Shape shape, ShardSpec spec, float std, float fill, bool wd) {
    return make_parameter(name_ + suffix, shape, spec, tp.rank, tp.size, std, fill, seed, wd);
  };
  const auto rep = ShardSpec::replicated();
  ln1_w_ = param(".ln_1.weight", {C}, rep, 0, 1, false);
  ln1_b_ = param(".ln_1.bias", {C}, rep, 0, 0, false);
  qkv_w_ = param(".attn.c_attn.weight", {3 * A, C}, ShardSpec::split(0, 3), init_std, 0, true);
  qkv_b_ = param(".attn.c_attn.bias", {3 * A}, ShardSpec::split(0, 3), 0, 0, false);
  attn_proj_w_ = param(".attn.c_proj.weight", {C, A}, ShardSpec::split(1), proj_std, 0, true);
  attn_proj_b_ = param(".attn.c_proj.bias", {C}, rep, 0, 0, false);
  ln2_w_ = param(".ln_2.weight", {C}, rep, 0, 1, false);
  ln2_b_ = param(".ln_2.bias", {C}, rep, 0, 0, false);
  fc_w_ = param(".mlp.c_fc.weight", {F, C}, ShardSpec::split(0), init_std, 0, true);
  fc_b_ = param(".mlp.c_fc.bias", {F}, ShardSpec::split(0), 0, 0, false);
  mlp_proj_w_ = param(".mlp.c_proj.weight", {C, F}, ShardSpec::split(1), proj_std, 0, true);
  mlp_proj_b_ = param(".mlp.c_proj.bias", {C}, rep, 0, 0, false);
  if (tp.sequence_sharded()) {
    for (Parameter* p : {&ln1_w_, &ln1_b_, &attn_proj_b_, &ln2_w_, &ln2_b_, &mlp_proj_b_}) {
      p->sequence_parallel_grad = true;
    }
  }
}

// Rows outside the tensor-parallel regions are this rank's sequence shard (all rows without
// sequence parallelism); inside them every rank sees all B * T rows.
Tensor TransformerBlock::forward(const Tensor& x, const MicrobatchContext& ctx) {
  const int64_t Ns = x.dim(0), C = shape_.hidden, Al = attn_local_, Fl = ffn_local_;
  const int64_t B = ctx.tokens.dim(0), T = ctx.tokens.dim(1), N = B * T, D = head_dim_;
  Saved s;
  s.B = B;
  s.T = T;
  s.x = x;
  s.ln1 = Tensor::empty({Ns, C});
  s.mean1 = Tensor::empty({Ns});
  s.rstd1 = Tensor::empty({Ns});
  k::layernorm_forward(s.ln1.f32(), s.mean1.f32(), s.rstd1.f32(), x.f32(), ln1_w_.value.f32(),
                       ln1_b_.value.f32(), Ns, C);
  const Tensor h1 = enter_tp_region_forward(s.ln1, tp_);
  s.qkv = Tensor::empty({N, 3 * Al});
  k::linear_forward(s.qkv.f32(), h1.f32(), qkv_w_.value.f32(), qkv_b_.value.f32(), N, C, 3 * Al);
  s.att = Tensor::empty({N, Al});
  s.probs = Tensor::empty({B, heads_local_, T, T});
  k::attention_forward(s.att.f32(), s.probs.f32(), s.qkv.f32(), B, T, heads_local_, D);
  Tensor o = Tensor::empty({N, C});
  k::linear_forward(o.f32(), s.att.f32(), attn_proj_w_.value.f32(), nullptr, N, Al, C);
  o = exit_tp_region_forward(o, tp_);
  // The replicated bias is added once, after the partial sums are reduced.
  k::bias_forward(o.f32(), attn_proj_b_.value.f32(), Ns, C);
  s.x2 = Tensor::empty({Ns, C});
  k::residual_forward(s.x2.f32(), x.f32(), o.f32(), Ns * C);

  s.ln2 = Tensor::empty({Ns, C});
  s.mean2 = Tensor::empty({Ns});
  s.rstd2 = Tensor::empty({Ns});
  k::layernorm_forward(s.ln2.f32(), s.mean2.f32(), s.rstd2.f32(), s.x2.f32(), ln2_w_.value.f32(),
                       ln2_b_.value.f32(), Ns, C);
  const Tensor h2 = enter_tp_region_forward(s.ln2, tp_);
  s.fc = Tensor::empty({N, Fl});
  k::linear_forward(s.fc.f32(), h2.f32(), fc_w_.value.f32(), fc_b_.value.f32(), N, C, Fl);
  s.act = Tensor::empty({N, Fl});
  k::gelu_forward(s.act.f32(), s.fc.f32(), N * Fl);
  Tensor p = Tensor::empty({N, C});
  k::linear_forward(p.f32(), s.act.f32(), mlp_proj_w_.value.f32(), nullptr, N, Fl, C);
  p = exit_tp_region_forward(p, tp_);
  k::bias_forward(p.f32(), mlp_proj_b_.value.f32(), Ns, C);
  Tensor y = Tensor::empty({Ns, C});
  k::residual_forward(y.f32(), s.x2.f32(), p.f32(), Ns * C);
  if (recompute_attention_) s.probs = Tensor();
  if (ctx.training) stash_.put(ctx.microbatch, std::move(s));
  return y;
}

Tensor TransformerBlock::backward(const Tensor& dy_in, const MicrobatchContext& ctx) {
  Saved s = stash_.take(ctx.microbatch);
  const int64_t Ns = s.x.dim(0), N = s.B * s.T, C = shape_.hidden, Al = attn_local_, Fl = ffn_local_;
  const int64_t D = head_dim_;

  // MLP branch: y = x2 + proj(gelu(fc(ln2(x2)))).
  k::bias_backward(mlp_proj_b_.grad.f32(), dy_in.f32(), Ns, C);
  const Tensor dy = exit_tp_region_backward(dy_in, tp_);
  Tensor dact = Tensor::empty({N, Fl});
  k::linear_backward(dact.f32(), mlp_proj_w_.grad.f32(), nullptr, dy.f32(), s.act.f32(),
                     mlp_proj_w_.value.f32(), N, Fl, C);
  Tensor dfc = Tensor::empty({N, Fl});
  k::gelu_backward(dfc.f32(), s.fc.f32(), dact.f32(), N * Fl);
  Tensor dh2 = Tensor::empty({N, C});
  // Sequence parallelism keeps only the ln2 shard; the full input is gathered again here
  // rather than held through the whole forward-backward gap.
  const Tensor h2 = enter_tp_region_forward(s.ln2, tp_);
  k::linear_backward(dh2.f32(), fc_w_.grad.f32(), fc_b_.grad.f32(), dfc.f32(), h2.f32(),
                     fc_w_.value.f32(), N, C, Fl);
  const Tensor dln2 = enter_tp_region_backward(dh2, tp_);
  Tensor dx2 = Tensor::empty({Ns, C});
  k::layernorm_backward(dx2.f32(), ln2_w_.grad.f32(), ln2_b_.grad.f32(), dln2.f32(), s.x2.f32(),
                        ln2_w_.value.f32(), s.mean2.f32(), s.rstd2.f32(), Ns, C);
  k::accumulate(dx2.f32(), dy_in.f32(), Ns * C);

  // Attention branch: x2 = x + proj(attn(qkv(ln1(x)))).
  k::bias_backward(attn_proj_b_.grad.f32(), dx2.f32(), Ns, C);
  const Tensor do_ = exit_tp_region_backward(dx2, tp_);
  Tensor datt = Tensor::empty({N, Al});
  k::linear_backward(datt.f32(), attn_proj_w_.grad.f32(), nullptr, do_.f32(), s.att.f32(),
                     attn_proj_w_.value.f32(), N, Al, C);
  if (!s.probs.defined()) {
    s.probs = Tensor::empty({s.B, heads_local_, s.T, s.T});
    Tensor unused = Tensor::empty({N, Al});
    k::attention_forward(unused.f32(), s.probs.f32(), s.qkv.f32(), s.B, s.T, heads_local_, D);
  }
  Tensor dqkv = Tensor::empty({N, 3 * Al});
  k::attention_backward(dqkv.f32(), datt.f32(), s.qkv.f32(), s.probs.f32(), s.B, s.T, heads_local_, D);
  Tensor dh1 = Tensor::empty({N, C});
  const Tensor h1 = enter_tp_region_forward(s.ln1, tp_);
  k::linear_backward(dh1.f32(), qkv_w_.grad.f32(), qkv_b_.grad.f32(), dqkv.f32(), h1.f32(),
                     qkv_w_.value.f32(), N, C, 3 * Al);
  const Tensor dln1 = enter_tp_region_backward(dh1, tp_);
  Tensor dx = Tensor::empty({Ns, C});
  k::layernorm_backward(dx.f32(), ln1_w_.grad.f32(), ln1_b_.grad.f32(), dln1.f32(), s.x.f32(),
                        ln1_w_.value.f32(), s.mean1.f32(), s.rstd1.f32(), Ns, C);
  k::accumulate(dx.f32(), dx2.f32(), Ns * C);
  return dx;
}

BlockActivations TransformerBlock::take_activations(int microbatch) {
  Saved s = stash_.take(microbatch);
  return {s.att, s.act};
}

std::vector<Parameter*> TransformerBlock::parameters() {
  return {&ln1_w_, &ln1_b_, &qkv_w_, &qkv_b_, &attn_proj_w_, &attn_proj_b_,
          &ln2_w_, &ln2_b_, &fc_w_, &fc_b_, &mlp_proj_w_, &mlp_proj_b_};
}

}  // namespace tessera
