// Llama decoder block forward/backward through the Compute seam (any backend, any precision).
#include "runtime/model/llama_block.h"

#include "runtime/compute/compute.h"

namespace tessera {

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

void LlamaBlock::rope_tables(Backend& ops, int64_t T) {
  if (cos_.defined() && cos_.dim(0) == T) return;
  cos_ = Tensor::empty({T, shape_.head_dim / 2}, DType::F32, ops.device());
  sin_ = Tensor::empty({T, shape_.head_dim / 2}, DType::F32, ops.device());
  ops.rope_tables(cos_, sin_, T, shape_.head_dim, shape_.rotary_base);
}

// Rows outside the tensor-parallel regions are this rank's sequence shard (all rows without
// sequence parallelism); inside them every rank sees all B * T rows. GEMM inputs (n1, n2, att,
// act) are saved in the compute dtype, as in TransformerBlock.
Tensor LlamaBlock::forward(const Tensor& x, const MicrobatchContext& ctx) {
  const Compute& m = ctx.math();
  Backend& ops = m.ops();
  const int64_t Ns = x.dim(0), C = shape_.hidden, D = shape_.head_dim, Fl = ffn_local_;
  const int64_t Hl = heads_local_, Gl = groups_local_, A = Hl * D, Kw = Gl * D;
  const int64_t B = ctx.tokens.dim(0), T = ctx.tokens.dim(1), N = B * T;
  rope_tables(ops, T);
  Saved s;
  s.B = B;
  s.T = T;
  s.x = x;
  Tensor n1 = m.empty({Ns, C});
  s.rstd1 = m.empty({Ns});
  ops.rmsnorm_forward(n1, s.rstd1, x, norm1_w_.value, shape_.norm_eps);
  s.n1 = m.to_compute(n1);
  const Tensor h1 = enter_tp_region_forward(s.n1, tp_);
  Tensor q = m.empty({N, A}), kk = m.empty({N, Kw}), v = m.empty({N, Kw});
  m.linear_forward(q, h1, q_w_, nullptr);
  m.linear_forward(kk, h1, k_w_, nullptr);
  m.linear_forward(v, h1, v_w_, nullptr);
  ops.rope_forward(q, cos_, sin_, T, Hl);
  ops.rope_forward(kk, cos_, sin_, T, Gl);
  s.qkv = m.empty({N, 3 * A});
  ops.gqa_pack_forward(s.qkv, q, kk, v, Hl, Gl);
  // The attention output is written in the compute dtype: it is the next GEMM's input.
  s.att = m.empty({N, A}, m.compute_dtype());
  s.probs = ops.attention_forward(s.att, s.qkv, B, T, Hl, D);
  Tensor o = m.empty({N, C});
  m.linear_forward(o, s.att, o_w_, nullptr);
  o = exit_tp_region_forward(o, tp_);
  s.x2 = m.empty({Ns, C});
  ops.residual_forward(s.x2, x, o);

  Tensor n2 = m.empty({Ns, C});
  s.rstd2 = m.empty({Ns});
  ops.rmsnorm_forward(n2, s.rstd2, s.x2, norm2_w_.value, shape_.norm_eps);
  s.n2 = m.to_compute(n2);
  const Tensor h2 = enter_tp_region_forward(s.n2, tp_);
  s.gate = m.empty({N, Fl});
  s.up = m.empty({N, Fl});
  m.linear_forward(s.gate, h2, gate_w_, nullptr);
  m.linear_forward(s.up, h2, up_w_, nullptr);
  Tensor act = m.empty({N, Fl});
  ops.swiglu_forward(act, s.gate, s.up);
  s.act = m.to_compute(act);
  Tensor p = m.empty({N, C});
  m.linear_forward(p, s.act, down_w_, nullptr);
  p = exit_tp_region_forward(p, tp_);
  Tensor y = m.empty({Ns, C});
  ops.residual_forward(y, s.x2, p);
  if (recompute_attention_) s.probs = Tensor();
  if (ctx.training) stash_.put(ctx.microbatch, std::move(s));
  return y;
}

// From d(attention output) to d(normed input) inside the tp region: attention, the grouped
// packing, the rotation and the three projections, in reverse.
Tensor LlamaBlock::attention_backward(const Compute& m, const Saved& s, const Tensor& datt) {
  Backend& ops = m.ops();
  const int64_t N = s.B * s.T, C = shape_.hidden, D = shape_.head_dim;
  const int64_t Hl = heads_local_, Gl = groups_local_, A = Hl * D, Kw = Gl * D;
  Tensor probs = s.probs;
  if (!probs.defined()) {
    Tensor unused = m.empty({N, A}, m.compute_dtype());
    probs = ops.attention_forward(unused, s.qkv, s.B, s.T, Hl, D);
  }
  Tensor dqkv = m.empty({N, 3 * A});
  ops.attention_backward(dqkv, datt, s.qkv, probs, s.B, s.T, Hl, D);
  Tensor dq = m.empty({N, A}), dk = m.empty({N, Kw}), dv = m.empty({N, Kw});
  ops.gqa_pack_backward(dq, dk, dv, dqkv, Hl, Gl);
  ops.rope_backward(dq, cos_, sin_, s.T, Hl);
  ops.rope_backward(dk, cos_, sin_, s.T, Gl);
  const Tensor h1 = enter_tp_region_forward(s.n1, tp_);
  Tensor dh1 = m.empty({N, C}), part = m.empty({N, C});
  m.linear_backward(&dh1, q_w_, nullptr, dq, h1);
  m.linear_backward(&part, k_w_, nullptr, dk, h1);
  ops.accumulate(dh1, part);
  m.linear_backward(&part, v_w_, nullptr, dv, h1);
  ops.accumulate(dh1, part);
  return dh1;
}

Tensor LlamaBlock::backward(const Tensor& dy_in, const MicrobatchContext& ctx) {
  const Compute& m = ctx.math();
  Backend& ops = m.ops();
  Saved s = stash_.take(ctx.microbatch);
  rope_tables(ops, s.T);
  const int64_t Ns = s.x.dim(0), N = s.B * s.T, C = shape_.hidden, Fl = ffn_local_;
  const int64_t A = heads_local_ * shape_.head_dim;

  // MLP branch: y = x2 + down(swiglu(gate(n2), up(n2))).
  const Tensor dy = exit_tp_region_backward(dy_in, tp_);
  Tensor dact = m.empty({N, Fl});
  m.linear_backward(&dact, down_w_, nullptr, dy, s.act);
  Tensor dgate = m.empty({N, Fl}), dup = m.empty({N, Fl});
  ops.swiglu_backward(dgate, dup, s.gate, s.up, dact);
  // Sequence parallelism keeps only the n2 shard; the full input is gathered again here.
  const Tensor h2 = enter_tp_region_forward(s.n2, tp_);
  Tensor dh2 = m.empty({N, C}), part = m.empty({N, C});
  m.linear_backward(&dh2, gate_w_, nullptr, dgate, h2);
  m.linear_backward(&part, up_w_, nullptr, dup, h2);
  ops.accumulate(dh2, part);
  const Tensor dn2 = enter_tp_region_backward(dh2, tp_);
  Tensor dx2 = m.empty({Ns, C});
  ops.rmsnorm_backward(dx2, norm2_w_.grad, dn2, s.x2, norm2_w_.value, s.rstd2);
  ops.accumulate(dx2, dy_in);

  // Attention branch: x2 = x + o(attn(...(n1))).
  const Tensor do_ = exit_tp_region_backward(dx2, tp_);
  Tensor datt = m.empty({N, A});
  m.linear_backward(&datt, o_w_, nullptr, do_, s.att);
  const Tensor dn1 = enter_tp_region_backward(attention_backward(m, s, datt), tp_);
  Tensor dx = m.empty({Ns, C});
  ops.rmsnorm_backward(dx, norm1_w_.grad, dn1, s.x, norm1_w_.value, s.rstd1);
  ops.accumulate(dx, dx2);
  return dx;
}

BlockActivations LlamaBlock::take_activations(int microbatch) {
  Saved s = stash_.take(microbatch);
  return {s.att, s.act};
}

std::vector<Parameter*> LlamaBlock::parameters() {
  return {&norm1_w_, &q_w_, &k_w_, &v_w_, &o_w_, &norm2_w_, &gate_w_, &up_w_, &down_w_};
}

}  // namespace tessera
