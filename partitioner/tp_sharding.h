// Tensor-parallel sharding rules: what one tp rank holds and computes for each layer of the
// layer graph (parameters, saved activations, GEMM shapes) and which tp collectives the layer
// adds. The cost and memory models read layers only through this, so they follow the runtime's
// Megatron layout (runtime/model/*.cc) without knowing the layer classes.
#pragma once

#include <cstdint>
#include <vector>

#include "partitioner/layer_graph.h"
#include "core/config.h"

namespace tessera {

enum class CollectiveKind { AllReduce, AllGather, ReduceScatter };

// One collective over the tp group. bytes: the full (unsharded) buffer, as the ring formulas take it.
struct TpCollective {
  CollectiveKind kind;
  int64_t bytes;
};

// A (batched) GEMM of one tp rank: count products of [m, k] x [k, n].
struct Gemm {
  int64_t m = 0, n = 0, k = 0;
  int64_t count = 1;
  double flops() const { return 2.0 * static_cast<double>(m) * n * k * count; }
};

struct TpOptions {
  int tp = 1;
  bool sequence_parallel = false;  // gpt only: LayerNorm/residual regions sharded by tokens
  int element_bytes = 4;           // activations and tp messages: 4 (fp32) or 2 (bf16/fp16)
};

// One layer as one tp rank sees it, per microbatch, in TpOptions::element_bytes per value.
struct ShardedLayer {
  int64_t params = 0;             // parameters this rank holds
  // A head tied to the embedding: the table's parameters on this rank, not in `params` (the
  // embedding's). A head on another pipeline stage than the embedding holds a copy of them.
  int64_t tied_params = 0;
  int64_t activation_bytes = 0;   // saved by forward for backward
  int64_t attention_bytes = 0;    // the part of it selective recompute drops (softmax probs)
  double attention_flops = 0;     // forward FLOPs selective recompute repeats (scores and mix)
  int64_t input_bytes = 0;        // the layer's input (what full recompute keeps at a stage start)
  int64_t output_bytes = 0;       // its output: the pipeline message when a stage ends here
  std::vector<Gemm> gemms;        // forward GEMMs; backward runs each twice (dX and dW)
  double forward_flops = 0;       // sum of gemms
  double backward_flops = 0;      // 2 x forward, as the layer graph counts
  std::vector<TpCollective> forward_comm;   // empty when tp == 1
  std::vector<TpCollective> backward_comm;
};

// The vocabulary as the vocab-parallel embedding/head hold it: padded to a multiple of tp.
int64_t tp_padded_vocab(int64_t vocab, int tp);

// Sharding of graph layer `layer` for micro batch size micro_batch. The layer graph gives the
// layer kind and (for mlp) the Linear widths and tp rule; the model config the block shapes.
ShardedLayer shard_layer(const LayerSpec& layer, const ModelConfig& model, int64_t vocab,
                         int64_t micro_batch, const TpOptions& tp);

// shard_layer for every layer of the graph.
std::vector<ShardedLayer> shard_graph(const LayerGraph& graph, const ModelConfig& model,
                                      int64_t micro_batch, const TpOptions& tp);

}  // namespace tessera
