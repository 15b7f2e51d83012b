// Linear, LayerNorm, tanh-GELU, causal attention and row reshaping as ONNX nodes.
#include "runtime/export/onnx_layers.h"

#include <onnx/defs/attr_proto_util.h>

#include <cmath>
#include <limits>

namespace tessera {

std::string add_linear(OnnxGraphBuilder& g, const std::string& x, const std::string& prefix, int64_t in,
                       int64_t out, bool with_bias) {
  std::vector<std::string> inputs{x, g.weight(prefix + ".weight", {out, in})};
  if (with_bias) inputs.push_back(g.weight(prefix + ".bias", {out}));
  return g.add("Gemm", inputs, prefix, {onnx::MakeAttribute("transB", int64_t{1})});
}

std::string add_layernorm(OnnxGraphBuilder& g, const std::string& x, const std::string& prefix, int64_t width) {
  return g.add("LayerNormalization", {x, g.weight(prefix + ".weight", {width}), g.weight(prefix + ".bias", {width})},
               prefix, {onnx::MakeAttribute("axis", int64_t{-1}), onnx::MakeAttribute("epsilon", 1e-5f)});
}

std::string add_tanh_gelu(OnnxGraphBuilder& g, const std::string& x, const std::string& name) {
  const std::string x2 = g.add("Mul", {x, x}, name + ".x2");
  const std::string x3 = g.add("Mul", {x2, x}, name + ".x3");
  const std::string cubic = g.add("Mul", {x3, g.float_scalar("gelu.cubic", 0.044715f)}, name + ".cubic");
  const std::string sum = g.add("Add", {x, cubic}, name + ".sum");
  const std::string u = g.add("Mul", {sum, g.float_scalar("gelu.sqrt_2_over_pi", 0.7978845608028654f)}, name + ".u");
  const std::string t = g.add("Tanh", {u}, name + ".tanh");
  const std::string one_plus = g.add("Add", {t, g.float_scalar("gelu.one", 1.0f)}, name + ".one_plus");
  const std::string half_x = g.add("Mul", {x, g.float_scalar("gelu.half", 0.5f)}, name + ".half_x");
  return g.add("Mul", {half_x, one_plus}, name);
}

SequenceValues add_sequence_values(OnnxGraphBuilder& g, const std::string& tokens) {
  SequenceValues s;
  s.seq = g.add("Shape", {tokens}, "seq", {onnx::MakeAttribute("start", int64_t{1}), onnx::MakeAttribute("end", int64_t{2})});
  const std::string seq_scalar = g.add("Squeeze", {s.seq}, "seq_scalar");
  s.positions = g.add("Range", {g.int64_scalar("zero", 0), seq_scalar, g.int64_scalar("one", 1)}, "positions");
  const std::string query_pos = g.add("Unsqueeze", {s.positions, g.int64s("axis1", {1})}, "query_positions");
  const std::string key_pos = g.add("Unsqueeze", {s.positions, g.int64s("axis0", {0})}, "key_positions");
  s.causal = g.add("Greater", {key_pos, query_pos}, "causal_mask");
  return s;
}

std::string add_causal_attention_heads(OnnxGraphBuilder& g, const std::string& q, const std::string& k,
                                       const std::string& v, const SequenceValues& s, int64_t heads,
                                       int64_t head_dim, const std::string& name) {
  const std::string kt = g.add("Transpose", {k}, name + ".kt", {onnx::MakeAttribute("perm", std::vector<int64_t>{0, 1, 3, 2})});
  const std::string scores = g.add("MatMul", {q, kt}, name + ".scores");  // [B, H, T, T]
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const std::string scaled = g.add("Mul", {scores, g.float_scalar("attention_scale", scale)}, name + ".scaled");
  // -inf, not a large negative number: the masked probabilities are exactly 0, as the kernel's.
  const std::string masked =
      g.add("Where", {s.causal, g.float_scalar("minus_inf", -std::numeric_limits<float>::infinity()), scaled},
            name + ".masked");
  const std::string probs = g.add("Softmax", {masked}, name + ".probs", {onnx::MakeAttribute("axis", int64_t{-1})});
  const std::string out = g.add("MatMul", {probs, v}, name + ".heads");  // [B, H, T, D]
  const std::string by_row = g.add("Transpose", {out}, name + ".by_row", {onnx::MakeAttribute("perm", std::vector<int64_t>{0, 2, 1, 3})});
  return g.add("Reshape", {by_row, g.int64s("rows_of_attention", {-1, heads * head_dim})}, name + ".out");
}

std::string add_unflatten_rows(OnnxGraphBuilder& g, const std::string& x, const std::string& tokens,
                               int64_t width, const std::string& name) {
  const std::string batch_seq = g.add("Shape", {tokens}, name + ".batch_seq");
  const std::string shape = g.add("Concat", {batch_seq, g.int64s(name + ".width", {width})}, name + ".shape",
                                  {onnx::MakeAttribute("axis", int64_t{0})});
  return g.add("Reshape", {x, shape}, name);
}

}  // namespace tessera
