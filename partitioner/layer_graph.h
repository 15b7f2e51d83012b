// The layer graph: a model as an ordered list of layers with their shapes and costs. The
// runtime builds its layers from the same list; the partitioner splits it into stages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

namespace tessera {

// Custom: a layer the embedding program defines; the runtime builds it through the
// LayerRegistry it is given (runtime/model/layer_registry.h), by LayerSpec::custom_type.
enum class LayerKind { Embedding, TransformerBlock, Head, Linear, Custom };
std::string layer_kind_name(LayerKind kind);

// What the partitioner needs to know about a custom layer, per token (one row of the
// [B * T, width] activations), so the numbers scale with the micro batch. Negative means the
// default of an element-wise layer: 4 forward FLOPs per value, backward twice forward, and
// the input saved for backward (4 bytes per value).
struct CustomLayerCost {
  int64_t params = 0;  // parameter count (unsharded)
  double forward_flops_per_token = -1;
  double backward_flops_per_token = -1;
  double activation_bytes_per_token = -1;
};

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
  // Custom: the registry key that builds it and its costs per token (defaults resolved).
  // in_features/out_features are its activation widths; it is replicated over tp (every tp
  // rank runs the whole layer).
  std::string custom_type{};
  CustomLayerCost custom_cost{};
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

// A custom layer node named `name` ("scale.0"; it prefixes the layer's parameter names),
// built by the registry entry `type`, mapping [rows, in_features] to [rows, out_features]
// (out_features 0: the same width), with its costs for graph.tokens_per_microbatch tokens.
LayerSpec custom_layer(const LayerGraph& graph, const std::string& name, const std::string& type,
                       int64_t in_features, int64_t out_features = 0, const CustomLayerCost& cost = {});

// Inserts `layer` after the layer named `after` ("h.0", "embedding") and any custom layers
// already following it. Throws InputError when there is no such layer, when it would follow
// the head, or when its name is taken.
void insert_layer_after(LayerGraph& graph, const std::string& after, LayerSpec layer);

// A custom layer and its place in the graph. Kept as a description rather than a LayerSpec so
// a graph can be rebuilt with it for any micro batch (the trainer, the layout search).
struct CustomLayerPlacement {
  std::string after;  // the layer it follows: "embedding", "h.0", "fc.1", or an earlier custom one
  std::string name;   // unique; prefixes its parameter names
  std::string type;   // the LayerRegistry key
  int64_t in_features = 0;
  int64_t out_features = 0;  // 0: in_features
  CustomLayerCost cost;
};

// build_layer_graph, then the custom layers inserted in order.
LayerGraph build_layer_graph(const ModelConfig& model, int64_t vocab_size, int64_t micro_batch,
                             const std::vector<CustomLayerPlacement>& custom_layers);

}  // namespace tessera
