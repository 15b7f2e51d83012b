// The forward graphs of the model architectures, from the int64 graph input `tokens`
// [batch, seq] to `logits` [batch, seq, width], on the weights the builder holds.
#pragma once

#include <string>

#include "core/config.h"
#include "runtime/export/onnx_graph_builder.h"

namespace tessera {

struct OnnxForward {
  std::string logits;  // the output value, [batch, seq, width]
  int64_t width = 0;   // the unpadded vocabulary (gpt) or the output classes (mlp)
};

// nanoGPT as runtime/model: token + position embedding, pre-LN blocks (causal attention over
// model.num_attention_heads heads of attention_head_dim(model), tanh-GELU MLP), ln_f, and the
// untied lm_head.
OnnxForward add_gpt_forward(OnnxGraphBuilder& g, const ModelConfig& model, const std::string& tokens);

// The Llama forward as runtime/model/llama_block.cc: token embedding, blocks of RMSNorm,
// q/k/v projections, rotary embedding (transformers' rotate-half), grouped-query causal
// attention, o_proj, RMSNorm and the SwiGLU MLP, the final RMSNorm and the head (wte.weight
// when tied). No biases.
OnnxForward add_llama_forward(OnnxGraphBuilder& g, const ModelConfig& model, const std::string& tokens);

// The mlp arch: token embedding, num_layers Linear layers each followed by the activation,
// and the head's Linear.
OnnxForward add_mlp_forward(OnnxGraphBuilder& g, const ModelConfig& model, const std::string& tokens);

}  // namespace tessera
