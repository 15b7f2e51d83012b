// PartitionPlan: one parallel layout of a model with its stage split and what the cost and
// memory models predict for it. The partitioner makes plans, the runtime runs them; JSON in
// and out (`tessera plan --json`), and plan_overrides() turns one into `--set` config overrides.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "partitioner/memory_model.h"

namespace tessera {

// Where one step's time goes on the slowest pipeline rank (seconds).
struct StepBreakdown {
  double pipeline_s = 0;      // simulated forward/backward makespan, incl. tp comm and p2p
  double compute_s = 0;       // forward + backward compute of the busiest rank
  double tp_comm_s = 0;       // its tensor-parallel collectives (on the critical path)
  double p2p_s = 0;           // one pipeline message
  double dp_comm_s = 0;       // gradient all-reduce (or ZeRO reduce-scatters + all-gathers)
  double dp_exposed_s = 0;    // the part of it compute does not hide (ZeRO-2/3: in the pipeline too)
  double dp_bytes = 0;        // bytes this rank sends for it per step (partitioner/zero_model.h)
  double optimizer_s = 0;     // AdamW step
  double contention_s = 0;    // extra time when more ranks than cores share a CPU node
};

struct PartitionPlan {
  std::string model;    // "gpt 4x128, 0.80M params"
  std::string cluster;  // ClusterModel::name
  int world = 1, dp = 1, tp = 1, pp = 1, virtual_stages = 1;
  int micro_batch_size = 1, microbatches = 1, global_batch_size = 1, seq_length = 1;
  std::string schedule = "1f1b";  // gpipe | 1f1b | interleaved
  std::string recompute = "none";
  bool sequence_parallel = false;
  int zero_stage = 0;
  std::string precision = "fp32";
  std::vector<int> partition;  // layers per global stage (embedding and head count as layers)

  double step_time_s = 0;
  double tokens_per_s = 0;
  double mfu = 0;              // model FLOPs (no recompute) / step time / (peak per rank * world)
  double bubble = 0;           // idle fraction of the pipeline makespan, worst rank
  std::vector<double> stage_time_s;      // forward + backward of one microbatch per global stage
  std::vector<MemoryBreakdown> memory;   // per pipeline rank (stage)
  StepBreakdown breakdown;

  int64_t peak_memory() const;  // the largest memory[s].total()
  // "dp 2 tp 2 pp 2 1f1b m6 mb1": a short label for tables.
  std::string label() const;
};

nlohmann::json to_json(const PartitionPlan& plan);
// Throws InputError when a field is missing or of the wrong type.
PartitionPlan plan_from_json(const nlohmann::json& j);

// The plan as config overrides for `tessera train --set ...`: tp, pp, dp, schedule,
// virtual_stages, partition, recompute, sequence_parallel, zero_stage and micro batch size.
std::vector<std::string> plan_overrides(const PartitionPlan& plan);

}  // namespace tessera
