// The start-up banner rank 0 of `tessera train` prints before step 1: version, world and
// layout, the stage partition, model size, data, checkpoint and resume state, and what the
// partitioner's cost and memory models predict for this layout (step time, tokens/s, MFU,
// memory per rank), so a run that is slower or larger than planned shows it at once. It only
// formats: the partition and the prediction are the bring-up's choose_partition decision.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "partitioner/cost_model.h"
#include "partitioner/layer_graph.h"
#include "partitioner/partition_choice.h"
#include "partitioner/partition_plan.h"
#include "core/config.h"

namespace tessera {

// What the run found out beyond the config.
struct RunFacts {
  int world = 1, dp = 1, threads = 1;
  std::vector<int> partition;  // layers per global stage, as the trainer runs them
  std::string partition_source;  // partition auto: "the cost model" or "FLOPs"; empty when fixed
  int64_t train_tokens = 0, val_tokens = 0, vocab = 0;
  std::string resume;          // "none", "auto: step_40 in runs/x", "auto: no checkpoint yet"
  std::optional<PartitionPlan> predicted;
  std::string prediction_source;  // the machine model, or why there is no prediction
};

// The partition decision (partitioner/partition_choice.h, made once by the runtime's bring-up)
// as the banner shows it.
void take_partition(RunFacts& facts, const PartitionChoice& choice);

// The banner, one line per topic, every line starting with "tessera" or two spaces.
std::string format_banner(const Config& config, const LayerGraph& graph, const RunFacts& facts);

}  // namespace tessera
