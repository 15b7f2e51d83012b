// OnnxGraphBuilder: nodes and initializers of an ONNX graph.
#include "runtime/export/onnx_graph_builder.h"

#include <fmt/ranges.h>

namespace tessera {

OnnxGraphBuilder::OnnxGraphBuilder(onnx::GraphProto* graph, std::map<std::string, Tensor> weights,
                                   std::string source)
    : graph_(graph), weights_(std::move(weights)), source_(std::move(source)) {}

std::string OnnxGraphBuilder::unique(const std::string& name) {
  const int seen = used_names_[name]++;
  return seen == 0 ? name : fmt::format("{}_{}", name, seen);
}

std::string OnnxGraphBuilder::add(const std::string& op, const std::vector<std::string>& inputs,
                                  const std::string& name, const std::vector<onnx::AttributeProto>& attributes) {
  onnx::NodeProto* node = graph_->add_node();
  const std::string output = unique(name);
  node->set_op_type(op);
  node->set_name(output);
  for (const std::string& input : inputs) node->add_input(input);
  node->add_output(output);
  for (const onnx::AttributeProto& a : attributes) *node->add_attribute() = a;
  return output;
}

std::string OnnxGraphBuilder::weight(const std::string& name, const Shape& shape) {
  auto it = weights_.find(name);
  TESSERA_REQUIRE(it != weights_.end(), "{}: no tensor '{}', which the model config needs", source_, name);
  const Tensor& t = it->second;
  TESSERA_REQUIRE(t.shape() == shape, "{}: tensor '{}' has shape {} but the model config needs {}", source_,
                  name, shape_string(t.shape()), shape_string(shape));
  TESSERA_REQUIRE(t.dtype() == DType::F32, "{}: tensor '{}' is {}, the ONNX export needs F32", source_, name,
                  dtype_name(t.dtype()));
  onnx::TensorProto* init = graph_->add_initializer();
  init->set_name(unique(name));
  init->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : shape) init->add_dims(d);
  // raw_data is little-endian, as the tensor's memory on the hosts we build for.
  init->set_raw_data(t.data<char>(), t.nbytes());
  weights_.erase(it);
  return init->name();
}

Shape OnnxGraphBuilder::weight_shape(const std::string& name) const {
  auto it = weights_.find(name);
  TESSERA_REQUIRE(it != weights_.end(), "{}: no tensor '{}', which the model config needs", source_, name);
  return it->second.shape();
}

void OnnxGraphBuilder::require_all_weights_used() const {
  TESSERA_REQUIRE(weights_.empty(), "{}: tensor '{}' is not part of the model the config describes", source_,
                  weights_.empty() ? std::string() : weights_.begin()->first);
}

template <typename Fill>
std::string OnnxGraphBuilder::constant(const std::string& name, const std::string& value_key, Fill fill) {
  const std::string key = name + "=" + value_key;
  auto it = constants_.find(key);
  if (it != constants_.end()) return it->second;
  onnx::TensorProto* init = graph_->add_initializer();
  init->set_name(unique(name));
  fill(*init);
  return constants_.emplace(key, init->name()).first->second;
}

std::string OnnxGraphBuilder::int64s(const std::string& name, const std::vector<int64_t>& values) {
  return constant(name, fmt::format("{}", fmt::join(values, ",")), [&](onnx::TensorProto& t) {
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t.add_int64_data(v);
  });
}

std::string OnnxGraphBuilder::int64_scalar(const std::string& name, int64_t value) {
  return constant(name, std::to_string(value), [&](onnx::TensorProto& t) {
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_int64_data(value);
  });
}

std::string OnnxGraphBuilder::float_scalar(const std::string& name, float value) {
  // Keyed by the exact bits, so -inf and nearby values stay distinct.
  return constant(name, fmt::format("{:a}", value), [&](onnx::TensorProto& t) {
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_float_data(value);
  });
}

std::string OnnxGraphBuilder::float_tensor(const std::string& name, const Tensor& value) {
  TESSERA_CHECK(value.dtype() == DType::F32, "ONNX constant {} is {}, not F32", name, dtype_name(value.dtype()));
  onnx::TensorProto* init = graph_->add_initializer();
  init->set_name(unique(name));
  init->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : value.shape()) init->add_dims(d);
  init->set_raw_data(value.data<char>(), value.nbytes());
  return init->name();
}

}  // namespace tessera
