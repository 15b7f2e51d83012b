// The start-up memory cap check.
#include "partitioner/memory_cap.h"

#include <fmt/format.h>

#include "core/error.h"
#include "partitioner/layout_search.h"
#include "partitioner/partition_choice.h"
#include "partitioner/tp_sharding.h"

namespace tessera {

std::vector<MemoryBreakdown> config_layout_memory(const Config& c, const LayerGraph& graph, int world,
                                                  const std::vector<int>& partition) {
  const Layout lay = config_layout(c, world);
  const MemoryOptions o = layout_memory_options(lay, search_options_from_config(c, world));
  const std::vector<ShardedLayer> layers = shard_graph(graph, c.model, lay.micro_batch_size,
                                                       {lay.tp, lay.sequence_parallel, o.mixed_precision ? 2 : 4});
  std::vector<MemoryBreakdown> out;
  for (int rank = 0; rank < lay.pp; ++rank) {
    out.push_back(stage_memory(layers, rank_chunks(partition, lay.pp, lay.virtual_stages, rank), rank, o));
  }
  return out;
}

void check_memory_cap(const Config& c, const LayerGraph& graph, int world, const std::vector<int>& partition) {
  const double cap = c.parallel.memory_cap_mib * 1048576.0;
  if (cap <= 0) return;
  const std::vector<MemoryBreakdown> memory = config_layout_memory(c, graph, world, partition);
  for (size_t rank = 0; rank < memory.size(); ++rank) {
    const MemoryBreakdown& m = memory[rank];
    if (static_cast<double>(m.total()) <= cap) continue;
    const Layout lay = config_layout(c, world);
    const auto mib = [](int64_t bytes) { return fmt::format("{:.1f}", static_cast<double>(bytes) / 1048576.0); };
    TESSERA_REQUIRE(false,
                    "{}: parallel.memory_cap_mib = {:g}: dp {} x tp {} x pp {}, zero {} needs {} MiB per rank on "
                    "pipeline rank {} (parameters {}, gradients {}, optimizer {}, gathered {}, activations {}, "
                    "workspace {}, buffers {} MiB): over the cap, before anything is allocated",
                    c.source.empty() ? std::string("config") : c.source, c.parallel.memory_cap_mib, lay.dp, lay.tp,
                    lay.pp, lay.zero_stage, mib(m.total()), rank, mib(m.params), mib(m.grads), mib(m.optimizer),
                    mib(m.gathered), mib(m.activations), mib(m.workspace), mib(m.comm_buffers));
  }
}

}  // namespace tessera
