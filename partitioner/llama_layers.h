// The Llama family in the partitioner: the layer graph nodes (parameters, FLOPs, saved bytes)
// and the tensor-parallel sharding of the embedding, decoder block and head, mirroring
// runtime/model/llama_block.cc. A llama block is a LayerKind::TransformerBlock node; these
// are chosen by model.arch.
#pragma once

#include <cstdint>

#include "core/config.h"
#include "partitioner/layer_graph.h"
#include "partitioner/tp_sharding.h"

namespace tessera {

// The three kinds of node of a llama graph, unsharded, for micro batch B.
LayerSpec llama_embedding_spec(const ModelConfig& model, int64_t vocab, int64_t B);
LayerSpec llama_block_spec(const ModelConfig& model, int index, int64_t B);
LayerSpec llama_head_spec(const ModelConfig& model, int64_t vocab, int64_t B);

// One tp rank's share of each.
ShardedLayer llama_embedding_shard(const ModelConfig& model, int64_t vocab, int64_t B, const TpOptions& o);
ShardedLayer llama_block_shard(const ModelConfig& model, int64_t B, const TpOptions& o);
ShardedLayer llama_head_shard(const ModelConfig& model, int64_t vocab, int64_t B, const TpOptions& o);

}  // namespace tessera
