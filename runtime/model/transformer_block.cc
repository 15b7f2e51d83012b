// GPT transformer block forward/backward through the Compute seam (any backend, any precision).
#include "runtime/model/transformer_block.h"

#include <cmath>

#include "runtime/compute/compute.h"

namespace tessera {

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
// sequence parallelism); inside them every rank sees all B * T rows. GEMM inputs are saved in
// the compute dtype (Compute::to_compute): under bf16 that halves their memory.
Tensor TransformerBlock::forward(const Tensor& x, const MicrobatchContext& ctx) {
  const Compute& m = ctx.math();
  Backend& ops = m.ops();
  const int64_t Ns = x.dim(0), C = shape_.hidden, Al = attn_local_, Fl = ffn_local_;
  const int64_t B = ctx.tokens.dim(0), T = ctx.tokens.dim(1), N = B * T, D = head_dim_;
  Saved s;
  s.B = B;
  s.T = T;
  s.x = x;
  // LayerNorm and GELU outputs only feed GEMMs: they are written in the compute dtype directly,
  // before entering the tp region, so a sequence-parallel gather moves compute-dtype bytes.
  s.ln1 = m.empty({Ns, C}, m.compute_dtype());
  s.mean1 = m.empty({Ns});
  s.rstd1 = m.empty({Ns});
  ops.layernorm_forward(s.ln1, s.mean1, s.rstd1, x, ln1_w_.value, ln1_b_.value);
  const Tensor h1 = enter_tp_region_forward(s.ln1, tp_);
  s.qkv = m.empty({N, 3 * Al});
  m.linear_forward(s.qkv, h1, qkv_w_, &qkv_b_);
  // The attention output is written in the compute dtype: it is the next GEMM's input.
  s.att = m.empty({N, Al}, m.compute_dtype());
  s.probs = ops.attention_forward(s.att, s.qkv, B, T, heads_local_, D);
  // The replicated projection biases are added once, after the partial sums are reduced; with
  // no tensor parallelism there is nothing to reduce and the GEMM adds them.
  const bool bias_in_gemm = tp_.size == 1;
  Tensor o = m.empty({N, C});
  m.linear_forward(o, s.att, attn_proj_w_, bias_in_gemm ? &attn_proj_b_ : nullptr);
  o = exit_tp_region_forward(o, tp_);
  if (!bias_in_gemm) ops.bias_forward(o, attn_proj_b_.value);
  s.x2 = m.empty({Ns, C});
  ops.residual_forward(s.x2, x, o);

  s.ln2 = m.empty({Ns, C}, m.compute_dtype());
  s.mean2 = m.empty({Ns});
  s.rstd2 = m.empty({Ns});
  ops.layernorm_forward(s.ln2, s.mean2, s.rstd2, s.x2, ln2_w_.value, ln2_b_.value);
  const Tensor h2 = enter_tp_region_forward(s.ln2, tp_);
  s.fc = m.empty({N, Fl});
  m.linear_forward(s.fc, h2, fc_w_, &fc_b_);
  s.act = m.empty({N, Fl}, m.compute_dtype());
  ops.gelu_forward(s.act, s.fc);
  Tensor p = m.empty({N, C});
  m.linear_forward(p, s.act, mlp_proj_w_, bias_in_gemm ? &mlp_proj_b_ : nullptr);
  p = exit_tp_region_forward(p, tp_);
  if (!bias_in_gemm) ops.bias_forward(p, mlp_proj_b_.value);
  Tensor y = m.empty({Ns, C});
  ops.residual_forward(y, s.x2, p);
  if (recompute_attention_) s.probs = Tensor();
  if (ctx.training) stash_.put(ctx.microbatch, std::move(s));
  return y;
}

Tensor TransformerBlock::backward(const Tensor& dy_in, const MicrobatchContext& ctx) {
  const Compute& m = ctx.math();
  Backend& ops = m.ops();
  Saved s = stash_.take(ctx.microbatch);
  const int64_t Ns = s.x.dim(0), N = s.B * s.T, C = shape_.hidden, Al = attn_local_, Fl = ffn_local_;
  const int64_t D = head_dim_;

  // The projections' biases are added after the tp reduction, so their gradients come from the
  // rows of this rank's sequence shard; without sequence parallelism that is the GEMMs' dout
  // itself, and its bias sums ride the pass that rounds it for them.
  const bool bias_in_gemm_pass = !tp_.sequence_sharded();

  // MLP branch: y = x2 + proj(gelu(fc(ln2(x2)))).
  if (!bias_in_gemm_pass) ops.bias_backward(mlp_proj_b_.grad, dy_in);
  const Tensor dy = exit_tp_region_backward(dy_in, tp_);
  Tensor dact = m.empty({N, Fl});
  m.linear_backward(&dact, mlp_proj_w_, bias_in_gemm_pass ? &mlp_proj_b_ : nullptr, dy, s.act);
  Tensor dh2 = m.empty({N, C});
  // Sequence parallelism keeps only the ln2 shard; the full input is gathered again here
  // rather than held through the whole forward-backward gap.
  const Tensor h2 = enter_tp_region_forward(s.ln2, tp_);
  m.gelu_linear_backward(&dh2, fc_w_, fc_b_, s.fc, dact, h2);
  const Tensor dln2 = enter_tp_region_backward(dh2, tp_);
  Tensor dx2 = m.empty({Ns, C});
  ops.layernorm_backward(dx2, ln2_w_.grad, ln2_b_.grad, dln2, s.x2, ln2_w_.value, s.mean2, s.rstd2);
  ops.accumulate(dx2, dy_in);

  // Attention branch: x2 = x + proj(attn(qkv(ln1(x)))).
  if (!bias_in_gemm_pass) ops.bias_backward(attn_proj_b_.grad, dx2);
  const Tensor do_ = exit_tp_region_backward(dx2, tp_);
  Tensor datt = m.empty({N, Al});
  m.linear_backward(&datt, attn_proj_w_, bias_in_gemm_pass ? &attn_proj_b_ : nullptr, do_, s.att);
  if (!s.probs.defined()) {
    Tensor unused = m.empty({N, Al}, m.compute_dtype());
    s.probs = ops.attention_forward(unused, s.qkv, s.B, s.T, heads_local_, D);
  }
  Tensor dqkv = m.empty({N, 3 * Al});
  ops.attention_backward(dqkv, datt, s.qkv, s.probs, s.B, s.T, heads_local_, D);
  Tensor dh1 = m.empty({N, C});
  const Tensor h1 = enter_tp_region_forward(s.ln1, tp_);
  m.linear_backward(&dh1, qkv_w_, &qkv_b_, dqkv, h1);
  const Tensor dln1 = enter_tp_region_backward(dh1, tp_);
  Tensor dx = m.empty({Ns, C});
  ops.layernorm_backward(dx, ln1_w_.grad, ln1_b_.grad, dln1, s.x, ln1_w_.value, s.mean1, s.rstd1);
  ops.accumulate(dx, dx2);
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
