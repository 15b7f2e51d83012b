// Moving initializer bytes out of a ModelProto into one external data buffer.
#include "runtime/export/onnx_external_data.h"

namespace tessera {
namespace {

void set_entry(onnx::TensorProto& tensor, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* entry = tensor.add_external_data();
  entry->set_key(key);
  entry->set_value(value);
}

}  // namespace

std::string move_initializers_to_external_data(onnx::ModelProto& model, const std::string& location) {
  std::string data;
  for (onnx::TensorProto& tensor : *model.mutable_graph()->mutable_initializer()) {
    if (!tensor.has_raw_data()) continue;
    data.resize((data.size() + kOnnxExternalAlignment - 1) / kOnnxExternalAlignment * kOnnxExternalAlignment, '\0');
    set_entry(tensor, "location", location);
    set_entry(tensor, "offset", std::to_string(data.size()));
    set_entry(tensor, "length", std::to_string(tensor.raw_data().size()));
    data += tensor.raw_data();
    std::string().swap(*tensor.mutable_raw_data());  // clear_raw_data alone keeps the capacity
    tensor.clear_raw_data();
    tensor.set_data_location(onnx::TensorProto::EXTERNAL);
  }
  return data;
}

}  // namespace tessera
