// Builds the runtime layers of a llama layer graph: the vocab-parallel token embedding (no
// position embedding), LlamaBlocks, and the head with a final RMSNorm, optionally tied to the
// embedding.
#pragma once

#include <memory>
#include <vector>

#include "core/config.h"
#include "partitioner/layer_graph.h"
#include "runtime/model/layer.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

std::unique_ptr<Layer> build_llama_layer(const ModelConfig& model, const LayerGraph& graph, const LayerSpec& spec,
                                         TpGroup tp, uint64_t seed, bool selective_recompute);

// Points the head at the embedding's table. Both must be among `layers` (one pipeline stage
// holds them, which the config checks require of tied weights).
void tie_llama_embeddings(std::vector<std::unique_ptr<Layer>>& layers);

}  // namespace tessera
