// The GPT forward as ONNX nodes. Rows are batch * seq as in TransformerBlock; attention
// reshapes them to [batch, heads, seq, head_dim] and back.
#include <onnx/defs/attr_proto_util.h>

#include "partitioner/layer_graph.h"
#include "runtime/export/onnx_forward.h"
#include "runtime/export/onnx_layers.h"

namespace tessera {
namespace {

onnx::AttributeProto attr(const std::string& name, int64_t value) { return onnx::MakeAttribute(name, value); }
onnx::AttributeProto attr(const std::string& name, const std::vector<int64_t>& values) {
  return onnx::MakeAttribute(name, values);
}

struct AttentionShape {
  int64_t hidden, heads, head_dim;
};

// qkv [rows, 3 * heads * head_dim], each row q | k | v with head h at h * head_dim as the
// attention kernel reads it; returns the heads' outputs [rows, heads * head_dim].
std::string add_causal_attention(OnnxGraphBuilder& g, const std::string& qkv, const SequenceValues& s,
                                 const AttentionShape& a, const std::string& name) {
  const std::string split_shape =
      g.add("Concat", {g.int64s("minus_one", {-1}), s.seq, g.int64s("qkv_heads", {3, a.heads, a.head_dim})},
            name + ".split_shape", {attr("axis", 0)});
  const std::string split = g.add("Reshape", {qkv, split_shape}, name + ".split");  // [B, T, 3, H, D]
  const std::string by_head = g.add("Transpose", {split}, name + ".by_head", {attr("perm", {2, 0, 3, 1, 4})});
  const std::string q = g.add("Gather", {by_head, g.int64_scalar("index0", 0)}, name + ".q", {attr("axis", 0)});
  const std::string k = g.add("Gather", {by_head, g.int64_scalar("index1", 1)}, name + ".k", {attr("axis", 0)});
  const std::string v = g.add("Gather", {by_head, g.int64_scalar("index2", 2)}, name + ".v", {attr("axis", 0)});
  return add_causal_attention_heads(g, q, k, v, s, a.heads, a.head_dim, name);
}

std::string add_block(OnnxGraphBuilder& g, const std::string& x, const SequenceValues& s, const AttentionShape& a,
                      int64_t ffn, const std::string& p) {
  const int64_t C = a.hidden, A = a.heads * a.head_dim;
  const std::string ln1 = add_layernorm(g, x, p + ".ln_1", C);
  const std::string qkv = add_linear(g, ln1, p + ".attn.c_attn", C, 3 * A);
  const std::string att = add_causal_attention(g, qkv, s, a, p + ".attn");
  const std::string proj = add_linear(g, att, p + ".attn.c_proj", A, C);
  const std::string x2 = g.add("Add", {x, proj}, p + ".residual_1");
  const std::string ln2 = add_layernorm(g, x2, p + ".ln_2", C);
  const std::string fc = add_linear(g, ln2, p + ".mlp.c_fc", C, ffn);
  const std::string act = add_tanh_gelu(g, fc, p + ".mlp.gelu");
  const std::string mlp = add_linear(g, act, p + ".mlp.c_proj", ffn, C);
  return g.add("Add", {x2, mlp}, p + ".residual_2");
}

}  // namespace

OnnxForward add_gpt_forward(OnnxGraphBuilder& g, const ModelConfig& m, const std::string& tokens) {
  const AttentionShape a{m.hidden_size, m.num_attention_heads, attention_head_dim(m)};
  const int64_t C = m.hidden_size, V = g.weight_shape("wte.weight").at(0);

  const SequenceValues s = add_sequence_values(g, tokens);

  // Sequences longer than model.seq_length fail in Gather, as the runtime refuses them.
  const std::string tok = g.add("Gather", {g.weight("wte.weight", {V, C}), tokens}, "token_embedding");
  const std::string pos =
      g.add("Gather", {g.weight("wpe.weight", {m.seq_length, C}), s.positions}, "position_embedding");
  const std::string emb = g.add("Add", {tok, pos}, "embedding");  // [B, T, C]
  std::string x = g.add("Reshape", {emb, g.int64s("rows_of_hidden", {-1, C})}, "embedding_rows");
  for (int i = 0; i < m.num_layers; ++i) x = add_block(g, x, s, a, ffn_size(m), fmt::format("h.{}", i));
  const std::string lnf = add_layernorm(g, x, "ln_f", C);
  const std::string rows = add_linear(g, lnf, "lm_head", C, V, false);
  return {add_unflatten_rows(g, rows, tokens, V, "logits"), V};
}

}  // namespace tessera
