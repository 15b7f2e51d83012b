// ONNX's external-data convention, for models whose weights do not fit in one protobuf
// message (2 GiB): tensor bytes live in a file next to the model, and each initializer keeps
// only data_location EXTERNAL and the entries location / offset / length.
#pragma once

#include <onnx/onnx_pb.h>

#include <string>

namespace tessera {

// Offsets are multiples of this, so onnxruntime can memory-map each tensor.
inline constexpr size_t kOnnxExternalAlignment = 4096;

// Moves the raw_data of every initializer holding raw_data (the weights; small constants stay
// inline) into the returned buffer and points the initializer at `location` (a file name
// relative to the model's directory) and the tensor's offset and length in it.
std::string move_initializers_to_external_data(onnx::ModelProto& model, const std::string& location);

}  // namespace tessera
