// Llama decoder block forward/backward on the CPU kernels.
#include "runtime/model/llama_block.h"

#include "kernels/attention.h"
#include "kernels/gqa.h"
#include "kernels/matmul.h"
#include "kernels/residual.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace tessera {

namespace k = kernels::cpu;

LlamaBlock::LlamaBlock(std::string name, LlamaShape s, float init_std, uint64_t seed, TpGroup tp,
                       bool recompute_attention)
    : name_(std::move(name)), shape_(s), tp_(tp), recompute_attention_(recompute_attention) {
  TESSERA_CHECK(s.groups > 0 && s.heads % s.groups == 0, "block {}: heads {} not a multiple of groups {}", name_,
                s.heads, s.groups);
  TESSERA_CHECK(s.groups % tp.size == 0 && s.ffn % tp.size == 0,
                "block {}: key/value groups {} / ffn {} not divisible by tp {}", name_, s.groups, s.ffn, tp.size);
  TESSERA_CHECK(s.head_dim > 0 && s.head_dim % 2 == 0, "block {}: head_dim {} must be even for rotary embeddings",
                name_, s.head_dim);
  heads_local_ = s.heads / tp.size;
  groups_local_ = s.groups / tp.size;
  ffn_local_ = s.ffn / tp.size;
  const int64_t C = s.hidden, F = s.ffn, A = s.heads * s.head_dim, Kw = s.groups * s.head_dim;
  // Every matrix N(0, init_std) and the norms 1, as transformers' LlamaForCausalLM initialises.
  auto param = [&](const char* suffix, Shape shape, ShardSpec spec, float std, float fill, bool wd) {
    return make_parameter(name_ + suffix, shape, spec, tp.rank, tp.size, std, fill, seed, wd);
  };
  const auto rep = ShardSpec::replicated();
  norm1_w_ = param(".input_layernorm.weight", {C}, rep, 0, 1, false);
  q_w_ = param(".self_attn.q_proj.weight", {A, C}, ShardSpec::split(0), init_std, 0, true);
  k_w_ = param(".self_attn.k_proj.weight", {Kw, C}, ShardSpec::split(0), init_std, 0, true);
  v_w_ = param(".self_attn.v_proj.weight", {Kw, C}, ShardSpec::split(0), init_std, 0, true);
  o_w_ = param(".self_attn.o_proj.weight", {C, A}, ShardSpec::split(1), init_std, 0, true);
  norm2_w_ = param(".post_attention_layernorm.weight", {C}, rep, 0, 1, false);
  gate_w_ = param(".mlp.gate_proj.weight", {F, C}, ShardSpec::split(0), init_std, 0, true);
  up_w_ = param(".mlp.up_proj.weight", {F, C}, ShardSpec::split(0), init_std, 0, true);
  down_w_ = param(".mlp.down_proj.weight", {C, F}, ShardSpec::split(1), init_std, 0, true);
  if (tp.sequence_sharded()) norm1_w_.sequence_parallel_grad = norm2_w_.sequence_parallel_grad = true;
}

void LlamaBlock::rope_tables(int64_t T) {
  if (cos_.defined() && cos_.dim(0) == T) return;
  cos_ = Tensor::empty({T, shape_.head_dim / 2});
  sin_ = Tensor::empty({T, shape_.head_dim / 2});
  k::rope_tables(cos_.f32(), sin_.f32(), T, shape_.head_dim, shape_.rotary_base);
}

// Rows outside the tensor-parallel regions are this rank's sequence shard (all rows without
// sequence parallelism); inside them every rank sees all B * T rows.
Tensor LlamaBlock::forward(const Tensor& x, const MicrobatchContext& ctx) {
  const int64_t Ns = x.dim(0), C = shape_.hidden, D = shape_.head_dim, Fl = ffn_local_;
  const int64_t Hl = heads_local_, Gl = groups_local_, A = Hl * D, Kw = Gl * D;
  const int64_t B = ctx.tokens.dim(0), T = ctx.tokens.dim(1), N = B * T;
  rope_tables(T);
  Saved s;
  s.B = B;
  s.T = T;
  s.x = x;
  s.n1 = Tensor::empty({Ns, C});
  s.rstd1 = Tensor::empty({Ns});
  k::rmsnorm_forward(s.n1.f32(), s.rstd1.f32(), x.f32(), norm1_w_.value.f32(), Ns, C, shape_.norm_eps);
  const Tensor h1 = enter_tp_region_forward(s.n1, tp_);
  Tensor q = Tensor::empty({N, A}), kk = Tensor::empty({N, Kw}), v = Tensor::empty({N, Kw});
  k::linear_forward(q.f32(), h1.f32(), q_w_.value.f32(), nullptr, N, C, A);
  k::linear_forward(kk.f32(), h1.f32(), k_w_.value.f32(), nullptr, N, C, Kw);
  k::linear_forward(v.f32(), h1.f32(), v_w_.value.f32(), nullptr, N, C, Kw);
  k::rope_forward(q.f32(), q.f32(), cos_.f32(), sin_.f32(), N, T, Hl, D);
  k::rope_forward(kk.f32(), kk.f32(), cos_.f32(), sin_.f32(), N, T, Gl, D);
  s.qkv = Tensor::empty({N, 3 * A});
  k::gqa_pack_forward(s.qkv.f32(), q.f32(), kk.f32(), v.f32(), N, Hl, Gl, D);
  s.att = Tensor::empty({N, A});
  s.probs = Tensor::empty({B, Hl, T, T});
  k::attention_forward(s.att.f32(), s.probs.f32(), s.qkv.f32(), B, T, Hl, D);
  Tensor o = Tensor::empty({N, C});
  k::linear_forward(o.f32(), s.att.f32(), o_w_.value.f32(), nullptr, N, A, C);
  o = exit_tp_region_forward(o, tp_);
  s.x2 = Tensor::empty({Ns, C});
  k::residual_forward(s.x2.f32(), x.f32(), o.f32(), Ns * C);

  s.n2 = Tensor::empty({Ns, C});
  s.rstd2 = Tensor::empty({Ns});
  k::rmsnorm_forward(s.n2.f32(), s.rstd2.f32(), s.x2.f32(), norm2_w_.value.f32(), Ns, C, shape_.norm_eps);
  const Tensor h2 = enter_tp_region_forward(s.n2, tp_);
  s.gate = Tensor::empty({N, Fl});
  s.up = Tensor::empty({N, Fl});
  k::linear_forward(s.gate.f32(), h2.f32(), gate_w_.value.f32(), nullptr, N, C, Fl);
  k::linear_forward(s.up.f32(), h2.f32(), up_w_.value.f32(), nullptr, N, C, Fl);
  s.act = Tensor::empty({N, Fl});
  k::swiglu_forward(s.act.f32(), s.gate.f32(), s.up.f32(), N * Fl);
  Tensor p = Tensor::empty({N, C});
  k::linear_forward(p.f32(), s.act.f32(), down_w_.value.f32(), nullptr, N, Fl, C);
  p = exit_tp_region_forward(p, tp_);
  Tensor y = Tensor::empty({Ns, C});
  k::residual_forward(y.f32(), s.x2.f32(), p.f32(), Ns * C);
  if (recompute_attention_) s.probs = Tensor();
  if (ctx.training) stash_.put(ctx.microbatch, std::move(s));
  return y;
}

// From d(attention output) to d(normed input) inside the tp region: attention, the grouped
// packing, the rotation and the three projections, in reverse.
Tensor LlamaBlock::attention_backward(const Saved& s, const Tensor& datt) {
  const int64_t N = s.B * s.T, C = shape_.hidden, D = shape_.head_dim;
  const int64_t Hl = heads_local_, Gl = groups_local_, A = Hl * D, Kw = Gl * D;
  Tensor probs = s.probs;
  if (!probs.defined()) {
    probs = Tensor::empty({s.B, Hl, s.T, s.T});
    Tensor unused = Tensor::empty({N, A});
    k::attention_forward(unused.f32(), probs.f32(), s.qkv.f32(), s.B, s.T, Hl, D);
  }
  Tensor dqkv = Tensor::empty({N, 3 * A});
  k::attention_backward(dqkv.f32(), datt.f32(), s.qkv.f32(), probs.f32(), s.B, s.T, Hl, D);
  Tensor dq = Tensor::empty({N, A}), dk = Tensor::empty({N, Kw}), dv = Tensor::empty({N, Kw});
  k::gqa_pack_backward(dq.f32(), dk.f32(), dv.f32(), dqkv.f32(), N, Hl, Gl, D);
  k::rope_backward(dq.f32(), dq.f32(), cos_.f32(), sin_.f32(), N, s.T, Hl, D);
  k::rope_backward(dk.f32(), dk.f32(), cos_.f32(), sin_.f32(), N, s.T, Gl, D);
  const Tensor h1 = enter_tp_region_forward(s.n1, tp_);
  Tensor dh1 = Tensor::empty({N, C}), part = Tensor::empty({N, C});
  k::linear_backward(dh1.f32(), q_w_.grad.f32(), nullptr, dq.f32(), h1.f32(), q_w_.value.f32(), N, C, A);
  k::linear_backward(part.f32(), k_w_.grad.f32(), nullptr, dk.f32(), h1.f32(), k_w_.value.f32(), N, C, Kw);
  k::accumulate(dh1.f32(), part.f32(), N * C);
  k::linear_backward(part.f32(), v_w_.grad.f32(), nullptr, dv.f32(), h1.f32(), v_w_.value.f32(), N, C, Kw);
  k::accumulate(dh1.f32(), part.f32(), N * C);
  return dh1;
}

Tensor LlamaBlock::backward(const Tensor& dy_in, const MicrobatchContext& ctx) {
  Saved s = stash_.take(ctx.microbatch);
  rope_tables(s.T);
  const int64_t Ns = s.x.dim(0), N = s.B * s.T, C = shape_.hidden, Fl = ffn_local_;
  const int64_t A = heads_local_ * shape_.head_dim;

  // MLP branch: y = x2 + down(swiglu(gate(n2), up(n2))).
  const Tensor dy = exit_tp_region_backward(dy_in, tp_);
  Tensor dact = Tensor::empty({N, Fl});
  k::linear_backward(dact.f32(), down_w_.grad.f32(), nullptr, dy.f32(), s.act.f32(), down_w_.value.f32(), N, Fl, C);
  Tensor dgate = Tensor::empty({N, Fl}), dup = Tensor::empty({N, Fl});
  k::swiglu_backward(dgate.f32(), dup.f32(), s.gate.f32(), s.up.f32(), dact.f32(), N * Fl);
  // Sequence parallelism keeps only the n2 shard; the full input is gathered again here.
  const Tensor h2 = enter_tp_region_forward(s.n2, tp_);
  Tensor dh2 = Tensor::empty({N, C}), part = Tensor::empty({N, C});
  k::linear_backward(dh2.f32(), gate_w_.grad.f32(), nullptr, dgate.f32(), h2.f32(), gate_w_.value.f32(), N, C, Fl);
  k::linear_backward(part.f32(), up_w_.grad.f32(), nullptr, dup.f32(), h2.f32(), up_w_.value.f32(), N, C, Fl);
  k::accumulate(dh2.f32(), part.f32(), N * C);
  const Tensor dn2 = enter_tp_region_backward(dh2, tp_);
  Tensor dx2 = Tensor::empty({Ns, C});
  k::rmsnorm_backward(dx2.f32(), norm2_w_.grad.f32(), dn2.f32(), s.x2.f32(), norm2_w_.value.f32(),
                      s.rstd2.f32(), Ns, C);
  k::accumulate(dx2.f32(), dy_in.f32(), Ns * C);

  // Attention branch: x2 = x + o(attn(...(n1))).
  const Tensor do_ = exit_tp_region_backward(dx2, tp_);
  Tensor datt = Tensor::empty({N, A});
  k::linear_backward(datt.f32(), o_w_.grad.f32(), nullptr, do_.f32(), s.att.f32(), o_w_.value.f32(), N, A, C);
  const Tensor dn1 = enter_tp_region_backward(attention_backward(s, datt), tp_);
  Tensor dx = Tensor::empty({Ns, C});
  k::rmsnorm_backward(dx.f32(), norm1_w_.grad.f32(), dn1.f32(), s.x.f32(), norm1_w_.value.f32(), s.rstd1.f32(),
                      Ns, C);
  k::accumulate(dx.f32(), dx2.f32(), Ns * C);
  return dx;
}

std::vector<Parameter*> LlamaBlock::parameters() {
  return {&norm1_w_, &q_w_, &k_w_, &v_w_, &o_w_, &norm2_w_, &gate_w_, &up_w_, &down_w_};
}

}  // namespace tessera
