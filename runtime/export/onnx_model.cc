// build_onnx_model: the graph's interface, opset and metadata around an architecture's forward.
#include "runtime/export/onnx_model.h"

#include "runtime/export/onnx_forward.h"

namespace tessera {
namespace {

// A graph input or output with named dynamic dims (strings) and fixed ones (numbers).
void declare_value(onnx::ValueInfoProto* value, const std::string& name, onnx::TensorProto::DataType type,
                   const std::vector<std::string>& dynamic, const std::vector<int64_t>& fixed) {
  value->set_name(name);
  onnx::TypeProto::Tensor* tensor = value->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(type);
  for (const std::string& d : dynamic) tensor->mutable_shape()->add_dim()->set_dim_param(d);
  for (int64_t d : fixed) tensor->mutable_shape()->add_dim()->set_dim_value(d);
}

void add_metadata(onnx::ModelProto& model, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* entry = model.add_metadata_props();
  entry->set_key(key);
  entry->set_value(value);
}

}  // namespace

onnx::ModelProto build_onnx_model(const ModelConfig& model, std::map<std::string, Tensor> weights,
                                  const OnnxModelInfo& info) {
  TESSERA_REQUIRE(model.arch == "gpt" || model.arch == "llama" || model.arch == "mlp",
                  "model.arch '{}': the ONNX export knows gpt, llama and mlp", model.arch);
  onnx::ModelProto proto;
  proto.set_ir_version(onnx::IR_VERSION);
  proto.set_producer_name("tessera");
  proto.set_producer_version(TESSERA_VERSION);
  proto.set_doc_string(fmt::format("Tessera {} model, {} layers, exported from {}", model.arch, model.num_layers,
                                   info.source));
  onnx::OperatorSetIdProto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  add_metadata(proto, "tessera.arch", model.arch);
  add_metadata(proto, "tessera.step", std::to_string(info.step));
  if (!info.vocabulary.empty()) add_metadata(proto, "tessera.vocabulary", info.vocabulary);

  onnx::GraphProto* graph = proto.mutable_graph();
  graph->set_name(fmt::format("tessera_{}", model.arch));
  declare_value(graph->add_input(), kOnnxInputName, onnx::TensorProto::INT64, {"batch", "seq"}, {});
  OnnxGraphBuilder g(graph, std::move(weights), info.source);
  const OnnxForward forward = model.arch == "gpt"     ? add_gpt_forward(g, model, kOnnxInputName)
                              : model.arch == "llama" ? add_llama_forward(g, model, kOnnxInputName)
                                                      : add_mlp_forward(g, model, kOnnxInputName);
  g.require_all_weights_used();
  TESSERA_CHECK(forward.logits == kOnnxOutputName, "the forward's output is named {}", forward.logits);
  declare_value(graph->add_output(), kOnnxOutputName, onnx::TensorProto::FLOAT, {"batch", "seq"}, {forward.width});
  return proto;
}

}  // namespace tessera
