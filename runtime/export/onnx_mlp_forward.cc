// The mlp arch's forward as ONNX nodes: the layers LinearLayer and HeadLayer run, in rows.
#include "runtime/export/onnx_forward.h"
#include "runtime/export/onnx_layers.h"

namespace tessera {

OnnxForward add_mlp_forward(OnnxGraphBuilder& g, const ModelConfig& m, const std::string& tokens) {
  TESSERA_REQUIRE(m.activation == "gelu" || m.activation == "relu",
                  "model.activation '{}': the ONNX export knows gelu and relu", m.activation);
  const Shape embedding = g.weight_shape("embedding.weight");
  const int64_t V = embedding.at(0), in = m.input_size > 0 ? m.input_size : m.hidden_size;
  const int64_t out = m.output_size > 0 ? m.output_size : V;
  const std::string emb = g.add("Gather", {g.weight("embedding.weight", {V, in}), tokens}, "embedding");
  std::string x = g.add("Reshape", {emb, g.int64s("rows_of_input", {-1, in})}, "embedding_rows");
  int64_t width = in;
  for (int i = 0; i < m.num_layers; ++i) {
    const std::string name = fmt::format("fc.{}", i);
    const std::string pre = add_linear(g, x, name, width, m.hidden_size);
    x = m.activation == "relu" ? g.add("Relu", {pre}, name + ".relu") : add_tanh_gelu(g, pre, name + ".gelu");
    width = m.hidden_size;
  }
  const std::string rows = add_linear(g, x, "head", width, out);
  return {add_unflatten_rows(g, rows, tokens, out, "logits"), out};
}

}  // namespace tessera
