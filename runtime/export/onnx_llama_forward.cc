// The Llama forward as ONNX nodes, in the training block's order of operations
// (runtime/model/llama_block.cc). Opset 17 has no RMSNormalization (it came in 23) and no
// rotary op, so both are built from elementary ops; grouped-query attention expands each
// key/value group to its query heads (transformers' repeat_kv) before the shared causal
// attention of onnx_layers.
#include <onnx/defs/attr_proto_util.h>

#include "kernels/rope.h"
#include "partitioner/layer_graph.h"
#include "runtime/export/onnx_forward.h"
#include "runtime/export/onnx_layers.h"

namespace tessera {
namespace {

onnx::AttributeProto attr(const std::string& name, int64_t value) { return onnx::MakeAttribute(name, value); }
onnx::AttributeProto attr(const std::string& name, const std::vector<int64_t>& values) {
  return onnx::MakeAttribute(name, values);
}

struct LlamaShape {
  int64_t hidden, heads, groups, head_dim, ffn;
  float eps;
};

// x / sqrt(mean(x^2) + eps) * weight over the last axis, as kernels::cpu::rmsnorm_forward
// (and LlamaRMSNorm): the reciprocal square root is taken once per row.
std::string add_rmsnorm(OnnxGraphBuilder& g, const std::string& x, const std::string& prefix, int64_t width,
                        float eps) {
  const std::string squares = g.add("Mul", {x, x}, prefix + ".squares");
  const std::string mean = g.add("ReduceMean", {squares}, prefix + ".mean", {attr("axes", std::vector<int64_t>{-1})});
  const std::string shifted = g.add("Add", {mean, g.float_scalar("rmsnorm.eps", eps)}, prefix + ".plus_eps");
  const std::string root = g.add("Sqrt", {shifted}, prefix + ".root");
  const std::string rstd = g.add("Reciprocal", {root}, prefix + ".rstd");
  const std::string normed = g.add("Mul", {x, rstd}, prefix + ".normed");
  return g.add("Mul", {normed, g.weight(prefix + ".weight", {width})}, prefix);
}

// Rows [B*T, heads * D] to [B, heads, T, D].
std::string to_heads(OnnxGraphBuilder& g, const std::string& rows, const std::string& seq, int64_t heads,
                     int64_t head_dim, const std::string& name) {
  const std::string shape = g.add("Concat", {g.int64s("minus_one", {-1}), seq, g.int64s(name + ".dims", {heads, head_dim})},
                                  name + ".shape", {attr("axis", 0)});
  const std::string split = g.add("Reshape", {rows, shape}, name + ".split");  // [B, T, heads, D]
  return g.add("Transpose", {split}, name, {attr("perm", {0, 2, 1, 3})});
}

// The rotary tables of this sequence's positions, each half repeated: cos and sin [T, D].
struct RotaryTables {
  std::string cos, sin;
};

RotaryTables add_rotary_tables(OnnxGraphBuilder& g, const ModelConfig& m, const SequenceValues& s, int64_t head_dim) {
  // The kernel's own tables (angles rounded as transformers rounds them); sequences longer
  // than model.seq_length fail in Gather, as the runtime refuses them.
  Tensor cos = Tensor::empty({m.seq_length, head_dim / 2}), sin = Tensor::empty({m.seq_length, head_dim / 2});
  kernels::cpu::rope_tables(cos.f32(), sin.f32(), m.seq_length, head_dim, m.rotary_base);
  RotaryTables t;
  for (auto [table, name, out] : {std::tuple{&cos, "rope.cos", &t.cos}, std::tuple{&sin, "rope.sin", &t.sin}}) {
    const std::string rows = g.add("Gather", {g.float_tensor(std::string(name) + "_table", *table), s.positions},
                                   std::string(name) + "_rows");
    *out = g.add("Concat", {rows, rows}, name, {attr("axis", -1)});
  }
  return t;
}

// Rotate-half RoPE of x [B, heads, T, D]: x * cos + concat(-x2, x1) * sin, with x1 | x2 the
// halves of each head, as kernels::cpu::rope_forward pairs element i with i + D/2.
std::string add_rope(OnnxGraphBuilder& g, const std::string& x, const RotaryTables& t, int64_t head_dim,
                     const std::string& name) {
  const std::string last_axis = g.int64s("last_axis", {-1});
  const std::string zero = g.int64s("zero_1d", {0}), half = g.int64s("rope.half", {head_dim / 2});
  const std::string x1 = g.add("Slice", {x, zero, half, last_axis}, name + ".x1");
  const std::string x2 = g.add("Slice", {x, half, g.int64s("rope.full", {head_dim}), last_axis}, name + ".x2");
  const std::string minus_x2 = g.add("Neg", {x2}, name + ".minus_x2");
  const std::string rotated = g.add("Concat", {minus_x2, x1}, name + ".rotated", {attr("axis", -1)});
  const std::string a = g.add("Mul", {x, t.cos}, name + ".x_cos");
  const std::string b = g.add("Mul", {rotated, t.sin}, name + ".rotated_sin");
  return g.add("Add", {a, b}, name);
}

// k or v [B, groups, T, D] to [B, heads, T, D]: head h reads group h / (heads / groups).
std::string expand_groups(OnnxGraphBuilder& g, const std::string& x, const LlamaShape& a, const std::string& name) {
  if (a.groups == a.heads) return x;
  const std::string one_more = g.add("Unsqueeze", {x, g.int64s("axis2", {2})}, name + ".unsqueezed");
  const std::string repeated =
      g.add("Expand", {one_more, g.int64s("gqa.repeat", {1, 1, a.heads / a.groups, 1, 1})}, name + ".repeated");
  return g.add("Reshape", {repeated, g.int64s("gqa.heads", {0, a.heads, -1, a.head_dim})}, name);
}

std::string add_block(OnnxGraphBuilder& g, const std::string& x, const SequenceValues& s, const RotaryTables& rope,
                      const LlamaShape& a, const std::string& p) {
  const int64_t C = a.hidden, A = a.heads * a.head_dim, Kw = a.groups * a.head_dim;
  const std::string n1 = add_rmsnorm(g, x, p + ".input_layernorm", C, a.eps);
  const std::string q = add_linear(g, n1, p + ".self_attn.q_proj", C, A, false);
  const std::string k = add_linear(g, n1, p + ".self_attn.k_proj", C, Kw, false);
  const std::string v = add_linear(g, n1, p + ".self_attn.v_proj", C, Kw, false);
  const std::string qh = add_rope(g, to_heads(g, q, s.seq, a.heads, a.head_dim, p + ".q_heads"), rope, a.head_dim,
                                  p + ".q_rope");
  const std::string kh = add_rope(g, to_heads(g, k, s.seq, a.groups, a.head_dim, p + ".k_groups"), rope, a.head_dim,
                                  p + ".k_rope");
  const std::string vh = to_heads(g, v, s.seq, a.groups, a.head_dim, p + ".v_groups");
  const std::string att = add_causal_attention_heads(g, qh, expand_groups(g, kh, a, p + ".k_heads"),
                                                     expand_groups(g, vh, a, p + ".v_heads"), s, a.heads,
                                                     a.head_dim, p + ".self_attn");
  const std::string o = add_linear(g, att, p + ".self_attn.o_proj", A, C, false);
  const std::string x2 = g.add("Add", {x, o}, p + ".residual_1");
  const std::string n2 = add_rmsnorm(g, x2, p + ".post_attention_layernorm", C, a.eps);
  const std::string gate = add_linear(g, n2, p + ".mlp.gate_proj", C, a.ffn, false);
  const std::string up = add_linear(g, n2, p + ".mlp.up_proj", C, a.ffn, false);
  // SwiGLU: silu(gate) * up, silu(x) = x * sigmoid(x).
  const std::string silu = g.add("Mul", {gate, g.add("Sigmoid", {gate}, p + ".mlp.sigmoid")}, p + ".mlp.silu");
  const std::string act = g.add("Mul", {silu, up}, p + ".mlp.swiglu");
  const std::string down = add_linear(g, act, p + ".mlp.down_proj", a.ffn, C, false);
  return g.add("Add", {x2, down}, p + ".residual_2");
}

}  // namespace

OnnxForward add_llama_forward(OnnxGraphBuilder& g, const ModelConfig& m, const std::string& tokens) {
  const LlamaShape a{m.hidden_size, m.num_attention_heads, query_groups(m), attention_head_dim(m), ffn_size(m),
                     m.norm_epsilon};
  const int64_t C = m.hidden_size, V = g.weight_shape("wte.weight").at(0);
  const SequenceValues s = add_sequence_values(g, tokens);
  const RotaryTables rope = add_rotary_tables(g, m, s, a.head_dim);

  const std::string wte = g.weight("wte.weight", {V, C});
  const std::string emb = g.add("Gather", {wte, tokens}, "token_embedding");  // [B, T, C]
  std::string x = g.add("Reshape", {emb, g.int64s("rows_of_hidden", {-1, C})}, "embedding_rows");
  for (int i = 0; i < m.num_layers; ++i) x = add_block(g, x, s, rope, a, fmt::format("h.{}", i));
  const std::string norm = add_rmsnorm(g, x, "ln_f", C, a.eps);
  const std::string rows =
      m.untie_embeddings_and_output_weights
          ? add_linear(g, norm, "lm_head", C, V, false)
          : g.add("Gemm", {norm, wte}, "lm_head", {attr("transB", int64_t{1})});  // tied: the embedding's weight
  return {add_unflatten_rows(g, rows, tokens, V, "logits"), V};
}

}  // namespace tessera
