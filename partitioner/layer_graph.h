// The layer graph: a model as an ordered list of layers with their shapes and costs. The
// runtime builds its layers from the same list; the partitioner splits it into stages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace tessera {

enum class LayerKind { Embedding, TransformerBlock, Head, Linear };
std::string layer_kind_name(LayerKind kind);

struct LayerSpec {
  std::string name;  // "embedding", "h.0", ..., "head"; prefixes its parameter names
  LayerKind kind;
  int64_t in_features = 0;   // Linear (mlp): input width
  int64_t out_features = 0;  // Linear (mlp): output width
  // Linear (mlp): how tensor parallelism splits it. Megatron pairs: column then row; a last
  // unpaired layer stays replicated.
  enum class TpRule { Replicated, Column, Row } tp_rule = TpRule::Replicated;
  int64_t params = 0;        // parameter count (unsharded)
  double forward_flops = 0;  // per microbatch (unsharded)
  double backward_flops = 0;
  int64_t activation_bytes = 0;  // saved for backward, per microbatch (fp32, unsharded)
};

struct LayerGraph {
  std::vector<LayerSpec> layers;
  int64_t vocab_size = 0;
  int64_t total_params() const;
  double flops_per_token() const;  // forward + backward, per token of one microbatch row
  int64_t tokens_per_microbatch = 0;
};

// The GPT block's inner MLP width: model.ffn_hidden_size, or 4 * hidden_size when it is 0.
int64_t ffn_size(const ModelConfig& model);

// Index of the layer owning parameter `name` ("h.3.attn.c_proj.weight" -> the block h.3,
// "wte.weight" -> the embedding, "lm_head.weight" -> the head); -1 when none does.
int layer_of_parameter(const LayerGraph& graph, const std::string& name);

// Builds the graph for a model config, the vocabulary size, and a micro batch size.
LayerGraph build_layer_graph(const ModelConfig& model, int64_t vocab_size, int64_t micro_batch);

}  // namespace tessera
