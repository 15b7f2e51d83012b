// The start-up banner rank 0 of `tessera train` prints before step 1: version, world and
// layout, the stage partition, model size, data, checkpoint and resume state, and what the
// partitioner's cost and memory models predict for this layout (step time, tokens/s, MFU,
// memory per rank), so a run that is slower or larger than planned shows it at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "partitioner/cost_model.h"
#include "partitioner/layer_graph.h"
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

// For `tessera train` on world rank 0 (facts.world and facts.vocab set): the partition to run
// and the prediction for it. A fixed parallel.partition is kept. `auto` over more than one
// stage takes the cost model's balanced split when `cluster` is given and can place the world,
// else flop_partition (the trainer's FLOP balance, stage_partition). facts.prediction_source
// comes in as why there is no cluster and leaves naming the cluster, or why it could not predict.
void predict_run(RunFacts& facts, const Config& config, const std::optional<ClusterModel>& cluster,
                 const std::vector<int>& flop_partition);

// The banner, one line per topic, every line starting with "tessera" or two spaces.
std::string format_banner(const Config& config, const LayerGraph& graph, const RunFacts& facts);

// The machine model for predictions: `cluster_path` when given (InputError when it is not a
// valid cluster file), else the calibration cache when it exists and reads (`tessera plan
// --calibrate` writes it); nullopt, with the reason in `why`, otherwise.
std::optional<ClusterModel> prediction_cluster(const std::string& cluster_path, std::string& why);

}  // namespace tessera
