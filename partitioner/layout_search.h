// Layout search: for a model, a world size and a memory cap per rank, enumerate the parallel
// layouts the runtime accepts (dp, tp, pp, micro batch, schedule, virtual stages, recompute,
// ZeRO, sequence parallelism), balance each one's stages, simulate its pipeline schedule with
// the cost model, and rank them by predicted step time. Every layout left out gets one line
// saying why ("tp = 8 > heads 4", "needs 31.2 GiB > 24.0 GiB cap").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "partitioner/cost_model.h"
#include "partitioner/layer_graph.h"
#include "partitioner/memory_model.h"
#include "partitioner/outer_sync_cost.h"
#include "partitioner/partition_plan.h"
#include "partitioner/schedule.h"
#include "core/config.h"

namespace tessera {

// One candidate layout.
struct Layout {
  int dp = 1, tp = 1, pp = 1, virtual_stages = 1;
  int micro_batch_size = 1;
  ScheduleKind schedule = ScheduleKind::OneFOneB;
  Recompute recompute = Recompute::None;
  int zero_stage = 0;
  bool sequence_parallel = false;
  std::string label() const;  // "dp2 tp2 pp2 1f1b mb3 rc=none zero0"
};

struct SearchOptions {
  int world = 1;
  int global_batch_size = 1;
  double memory_cap = 0;  // bytes per rank; 0: the cluster's (device memory, or node RAM / ranks)
  std::vector<int> micro_batch_sizes;  // empty: 1, 2, 4, 8 and the config's, where valid
  // In this order of preference where layouts tie on time and memory.
  std::vector<ScheduleKind> schedules = {ScheduleKind::OneFOneB, ScheduleKind::Interleaved, ScheduleKind::GPipe};
  int max_virtual_stages = 4;          // interleaved: v in 2..this
  std::vector<Recompute> recompute = {Recompute::None, Recompute::Selective, Recompute::Full};  // selective: gpt only
  std::vector<int> zero_stages = {0, 1, 2, 3};  // 1..3 only where dp > 1 (partitioner/zero_model.h)
  int zero_prefetch = 1;  // parallel.zero_prefetch: ZeRO-3 gathers in flight ahead of the unit computing
  std::vector<bool> sequence_parallel = {false, true};  // true only for gpt with tp > 1
  double bucket_bytes = 4.0 * (1 << 20);
  // train.precision: fp32, or bf16/fp16 (2-byte activations and messages, bf16 weights with
  // fp32 master weights and gradients). Pair it with CostModel's half_precision.
  std::string precision = "fp32";
  std::string grad_reduce_dtype = "fp32";  // parallel.grad_reduce_dtype: fp32 or bf16
  // An embedding program's custom layers, placed in every layout's graph with their costs.
  std::vector<CustomLayerPlacement> custom_layers;
  // train.threads: compute units a rank uses on a CPU node; 0 = the node's cores divided among
  // its ranks, which is also the most a rank gets (more threads than that share the cores).
  int threads_per_rank = 0;
  // parallel.data_parallel_sync: allreduce, or local_sgd / diloco with the outer options.
  std::string data_parallel_sync = "allreduce";
  OuterSyncCostOptions outer;
};

// The options a config fixes: world, global batch, bucket size, precision and threads.
SearchOptions search_options_from_config(const Config& config, int world);

struct Rejection {
  std::string layout;  // the part of the layout that decides ("tp8", "dp2 tp1 pp4 mb3 ...")
  std::string reason;  // one line
  double needs_bytes = 0;  // memory rejections: the smallest peak per rank any split reaches
};

struct SearchResult {
  std::vector<PartitionPlan> plans;  // best first
  std::vector<Rejection> rejected;
  int evaluated = 0;                 // layouts simulated (plans + memory rejections)
};

// The memory cap in effect: options.memory_cap, else the cluster's.
double effective_memory_cap(const ClusterModel& cluster, int world, double memory_cap);

// Why a layout is not valid for this model and world, or nullopt: tp must divide heads,
// hidden and ffn size; layers >= pp * v (the graph's layers: num_layers + 2 plus
// custom_layers, SearchOptions::custom_layers.size()); the global batch divisible by micro
// batch * dp; interleaved needs v > 1, pp >= 2 and microbatches % pp == 0; sequence
// parallelism needs tp > 1 and seq_length % tp == 0.
std::optional<std::string> layout_error(const ModelConfig& model, const Layout& layout, int world,
                                        int global_batch_size, int custom_layers = 0);

// Why `partition` (layers per global stage) does not split this layout's layer graph, or nullopt.
std::optional<std::string> partition_error(const ModelConfig& model, const Layout& layout, const SearchOptions& options,
                                           const std::vector<int>& partition);

// Balances, simulates and sizes one layout (layout_evaluation.cc); the plan, or the reason it does not fit (memory).
// partition: a fixed split instead of the balancer's (layers per global stage).
struct Evaluation {
  std::optional<PartitionPlan> plan;
  std::string rejection;
  double needs_bytes = 0;  // when rejected for memory
};
Evaluation evaluate_layout(const ModelConfig& model, int64_t vocab, const CostModel& cost, const Layout& layout,
                           const SearchOptions& options, const std::vector<int>& partition = {});

SearchResult search_layouts(const ModelConfig& model, int64_t vocab, const CostModel& cost,
                            const SearchOptions& options);

// The layout a config asks for, with dp resolved for the world (parallel.data_parallel_size
// 0 = world / (tp * pp)).
Layout config_layout(const Config& config, int world);

// The memory model's options for a layout under the search options (the search's candidates
// and the start-up memory cap, partitioner/memory_cap.h, use the same).
MemoryOptions layout_memory_options(const Layout& layout, const SearchOptions& options);

// For `parallel.partition: auto`: the config's own layout, its stages balanced by the cost
// model (no memory cap: the user chose the layout), simulated and sized. plan.partition is
// the split to run, or fixed_partition when given. Throws InputError when the layout is not
// valid for the world.
PartitionPlan plan_config_layout(const Config& config, int64_t vocab, int world, const CostModel& cost,
                                 const std::vector<int>& fixed_partition = {},
                                 const std::vector<CustomLayerPlacement>& custom_layers = {});

}  // namespace tessera
