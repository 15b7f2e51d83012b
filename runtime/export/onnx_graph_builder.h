// Appends ONNX nodes, constants and weight initializers to a GraphProto with unique value
// names, and hands out a checkpoint's weights by name, each exactly once and shape-checked.
#pragma once

#include <onnx/onnx_pb.h>

#include <map>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

class OnnxGraphBuilder {
 public:
  // `weights`: the model's global F32 tensors by checkpoint name; `source` names where they
  // came from (a checkpoint directory) in errors.
  OnnxGraphBuilder(onnx::GraphProto* graph, std::map<std::string, Tensor> weights, std::string source);

  // Adds node `op` with one output, named `name` (a suffix keeps it unique); returns the output.
  std::string add(const std::string& op, const std::vector<std::string>& inputs, const std::string& name,
                  const std::vector<onnx::AttributeProto>& attributes = {});

  // Moves the weight `name` into an initializer of the same name; InputError when it is
  // missing or its shape is not `shape`, saying what the config needs.
  std::string weight(const std::string& name, const Shape& shape);
  // The shape of a weight not yet used (sizes the config does not give, e.g. the vocabulary).
  Shape weight_shape(const std::string& name) const;
  // InputError naming the first checkpoint tensor that no node used.
  void require_all_weights_used() const;

  // Constant initializers: a 1-D int64 tensor, a 0-d int64 scalar, a 0-d float scalar. Asking
  // again for the same name and value returns the first one.
  std::string int64s(const std::string& name, const std::vector<int64_t>& values);
  std::string int64_scalar(const std::string& name, int64_t value);
  std::string float_scalar(const std::string& name, float value);
  // A float initializer computed from the config (not a checkpoint weight), e.g. a rotary table.
  std::string float_tensor(const std::string& name, const Tensor& value);

 private:
  std::string unique(const std::string& name);
  template <typename Fill>
  std::string constant(const std::string& name, const std::string& value_key, Fill fill);
  onnx::GraphProto* graph_;
  std::map<std::string, Tensor> weights_;
  std::string source_;
  std::map<std::string, int> used_names_;
  std::map<std::string, std::string> constants_;  // "name=value" -> initializer name
};

}  // namespace tessera
