// choose_partition: a fixed split, the cost model's balance, or the FLOP balance.
#include "partitioner/partition_choice.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <numeric>

#include "core/error.h"
#include "partitioner/layout_search.h"
#include "partitioner/stage_balancer.h"

namespace tessera {

std::vector<int> stage_partition(const ParallelConfig& p, const LayerGraph& graph) {
  const int stages = p.pipeline_model_parallel_size * p.virtual_stages;
  if (!p.partition.empty()) {
    // The layout rules name the key and the value; reaching here with a bad split is a bug.
    TESSERA_CHECK(static_cast<int>(p.partition.size()) == stages &&
                      std::accumulate(p.partition.begin(), p.partition.end(), 0) ==
                          static_cast<int>(graph.layers.size()),
                  "parallel.partition [{}] does not split {} layers into {} stages (the layout rules were not "
                  "checked)", fmt::join(p.partition, ", "), graph.layers.size(), stages);
    return p.partition;
  }
  // A layer without GEMMs (the embedding) still costs a little, so it is not treated as free.
  BalanceProblem problem;
  problem.stages = p.pipeline_model_parallel_size;
  problem.virtual_stages = p.virtual_stages;
  double total = 0;
  for (const LayerSpec& l : graph.layers) total += l.forward_flops + l.backward_flops;
  for (const LayerSpec& l : graph.layers) {
    problem.layer_cost.push_back(l.forward_flops + l.backward_flops + 0.01 * total / graph.layers.size());
  }
  const BalanceResult r = balance_stages(problem);
  TESSERA_REQUIRE(r.feasible, "parallel.partition auto: {}", r.reason);
  return r.counts;
}

PartitionChoice choose_partition(const Config& config, const LayerGraph& graph, const PartitionInputs& in) {
  PartitionChoice choice;
  choice.partition = stage_partition(config.parallel, graph);
  const bool balance = config.parallel.partition.empty() && choice.partition.size() > 1;
  choice.source = balance ? "FLOPs" : "";
  choice.prediction_source = in.no_machine_reason;
  if (in.machine == nullptr) return choice;
  choice.prediction_source = fmt::format("cluster {}, {}", in.machine->name, in.machine->source);
  try {
    const CostModel cost(*in.machine, config.train.precision != "fp32");
    // Auto: the cost model's split (compute, element-wise traffic, tp collectives per layer)
    // replaces the FLOP one, and the prediction is for it.
    choice.predicted = plan_config_layout(config, in.vocab, in.world, cost,
                                          balance ? std::vector<int>{} : choice.partition, in.custom_layers);
    choice.partition = choice.predicted->partition;
    if (balance) choice.source = "the cost model";
  } catch (const InputError& e) {
    choice.prediction_source = e.what();  // e.g. the machine has fewer devices than this world
  }
  return choice;
}

std::vector<LayerRange> rank_chunks(const std::vector<int>& partition, int pp, int v, int rank) {
  std::vector<int> start(partition.size() + 1, 0);
  std::partial_sum(partition.begin(), partition.end(), start.begin() + 1);
  std::vector<LayerRange> chunks;
  for (int c = 0; c < v; ++c) {
    const int g = c * pp + rank;
    TESSERA_CHECK(g < static_cast<int>(partition.size()), "global stage {} of a {}-stage partition", g,
                  partition.size());
    chunks.push_back({start[g], start[g + 1]});
  }
  return chunks;
}

std::vector<int> pipeline_rank_of_layers(const std::vector<int>& partition, int pp) {
  std::vector<int> rank_of;
  for (size_t g = 0; g < partition.size(); ++g) rank_of.insert(rank_of.end(), partition[g], static_cast<int>(g) % pp);
  return rank_of;
}

}  // namespace tessera
