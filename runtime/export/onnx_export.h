// `tessera export CKPT --onnx OUT`: a checkpoint of any layout as one ONNX model that
// onnxruntime runs (docs/onnx.md). The graph comes from build_onnx_model, is validated by
// ONNX's checker, and is written crash safe (temporary name, fsync, rename).
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "core/config.h"

namespace tessera {

struct OnnxExportOptions {
  // A model whose serialized size would exceed this many bytes keeps its weights in
  // <out>.data (ONNX external data). The default is protobuf's limit on one message.
  int64_t external_data_threshold = std::numeric_limits<int32_t>::max();
};

struct OnnxExportResult {
  uint64_t model_bytes = 0;  // the .onnx file
  std::string data_path;     // <out>.data, empty when the weights are inside the model
  uint64_t data_bytes = 0;
  int64_t parameters = 0;
};

// The model's shape (the sizes the weights are checked against) comes from the manifest's
// "model" section.
OnnxExportResult export_onnx(const std::string& step_dir, const std::string& out_path,
                             const OnnxExportOptions& options = {});

}  // namespace tessera
