// Builds the ONNX ModelProto of a Tessera model from its config and global weights: opset
// 17, graph input `tokens` (int64 [batch, seq], both dims dynamic) and output `logits`
// (float [batch, seq, width]), every weight an initializer named as in the checkpoint.
#pragma once

#include <onnx/onnx_pb.h>

#include <map>
#include <string>

#include "core/config.h"
#include "runtime/tensor.h"

namespace tessera {

// 17 is the newest opset of Debian's libonnx 1.12, and the first with LayerNormalization.
inline constexpr int64_t kOnnxOpset = 17;
inline constexpr const char* kOnnxInputName = "tokens";
inline constexpr const char* kOnnxOutputName = "logits";

struct OnnxModelInfo {
  std::string source;      // where the weights came from, for errors (a checkpoint directory)
  int64_t step = 0;        // stored as metadata "tessera.step"
  std::string vocabulary;  // the checkpoint's vocabulary JSON, as metadata "tessera.vocabulary"
};

// InputError (naming info.source and the tensor) when a weight the config needs is missing or
// has another shape, or when a weight is left over; model.arch gpt, llama or mlp.
onnx::ModelProto build_onnx_model(const ModelConfig& model, std::map<std::string, Tensor> weights,
                                  const OnnxModelInfo& info);

}  // namespace tessera
