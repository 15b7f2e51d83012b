// The per-rank memory cap of `tessera train` (parallel.memory_cap_mib): the memory model's
// peak for the config's own layout and partition, checked at start-up, before any rank
// allocates its model, so that a layout whose shards do not fit is refused with one line
// instead of running out of memory later.
#pragma once

#include <vector>

#include "core/config.h"
#include "partitioner/layer_graph.h"
#include "partitioner/memory_model.h"

namespace tessera {

// The memory model's per-rank breakdown for each pipeline rank of the config's layout on
// `world` ranks, with `partition` (layers per global stage) and the run's layer graph.
std::vector<MemoryBreakdown> config_layout_memory(const Config& config, const LayerGraph& graph, int world,
                                                  const std::vector<int>& partition);

// InputError naming the key, the layout, the pipeline rank and its breakdown when the model's
// peak exceeds parallel.memory_cap_mib; nothing when the cap is 0 (none).
void check_memory_cap(const Config& config, const LayerGraph& graph, int world, const std::vector<int>& partition);

}  // namespace tessera
