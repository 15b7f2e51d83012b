// Linear, LayerNorm, tanh-GELU and row reshaping as ONNX nodes.
#include "runtime/export/onnx_layers.h"

#include <onnx/defs/attr_proto_util.h>

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

std::string add_unflatten_rows(OnnxGraphBuilder& g, const std::string& x, const std::string& tokens,
                               int64_t width, const std::string& name) {
  const std::string batch_seq = g.add("Shape", {tokens}, name + ".batch_seq");
  const std::string shape = g.add("Concat", {batch_seq, g.int64s(name + ".width", {width})}, name + ".shape",
                                  {onnx::MakeAttribute("axis", int64_t{0})});
  return g.add("Reshape", {x, shape}, name);
}

}  // namespace tessera
