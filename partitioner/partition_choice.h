// The one stage-partition decision: which layers each global pipeline stage runs. A fixed
// parallel.partition is kept; `auto` over more than one stage is the cost model's balanced split
// when a machine model is given and can place the world, else a balance of the layers' FLOPs.
// The runtime's bring-up makes it once (rank 0) and broadcasts it, so `tessera train`, Python
// and an embedding program run the same split; the banner only shows what was chosen.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "partitioner/cost_model.h"
#include "partitioner/layer_graph.h"
#include "partitioner/memory_model.h"
#include "partitioner/partition_plan.h"

namespace tessera {

struct PartitionChoice {
  std::vector<int> partition;  // layers per global stage (pipeline_model_parallel_size * virtual_stages)
  std::string source;          // auto: "the cost model" or "FLOPs"; empty when fixed (or one stage)
  std::optional<PartitionPlan> predicted;  // the cost model's plan for this layout, with a machine model
  std::string prediction_source;           // the machine model, or why there is no prediction
};

// What the decision may use beyond the config and the graph.
struct PartitionInputs {
  int world = 1;
  int64_t vocab = 0;                                // the layer graph's vocabulary size
  const ClusterModel* machine = nullptr;            // null: no prediction, FLOP balance
  std::string no_machine_reason;                    // shown as prediction_source without one
  std::vector<CustomLayerPlacement> custom_layers;  // an embedding program's, as in the graph
};

// The partition for this config, layout and graph (custom layers included). InputError when
// `auto` cannot split the layers over the stages.
PartitionChoice choose_partition(const Config& config, const LayerGraph& graph, const PartitionInputs& inputs = {});

// The fixed parallel.partition, or for auto the stage balancer over per-layer FLOPs (the
// choice without a machine model). The layout rules (layout_rules.h) must hold.
std::vector<int> stage_partition(const ParallelConfig& parallel, const LayerGraph& graph);

// The chunk -> stage map, in one place: pipeline rank `rank` runs global stages c * pp + rank
// for c in 0..v-1 (Megatron's interleaved order; v = 1 is one chunk per rank). The layer ranges
// of its chunks, from the layers per global stage.
std::vector<LayerRange> rank_chunks(const std::vector<int>& partition, int pp, int virtual_stages, int rank);
// The pipeline rank that holds each layer of the graph.
std::vector<int> pipeline_rank_of_layers(const std::vector<int>& partition, int pp);

}  // namespace tessera
