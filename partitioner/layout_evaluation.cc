// evaluate_layout: one candidate layout, in named steps. The layer times on this cluster, the
// stage split (the balancer's, under the memory cap, or a fixed one), the plan's description,
// the exact memory per pipeline rank, the pipeline simulated with the stage times, and the step
// time each rank ends at after its gradient reduction and optimizer step.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "core/error.h"
#include "partitioner/layout_rules.h"
#include "partitioner/layout_search.h"
#include "partitioner/partition_choice.h"
#include "partitioner/plan_report.h"
#include "partitioner/schedule_sim.h"
#include "partitioner/stage_balancer.h"
#include "partitioner/zero_model.h"

namespace tessera {
namespace {

// What every step of one layout's evaluation reads.
struct Candidate {
  Candidate(const ModelConfig& model, int64_t vocab, const CostModel& cost, const Layout& layout,
            const SearchOptions& options);

  const ModelConfig& model;
  const CostModel& cost;
  const Layout& layout;
  const SearchOptions& options;
  LayerGraph graph;
  std::vector<ShardedLayer> layers;  // the graph's layers as this layout shards them
  RankPlacement placement;
  int threads_per_rank = 1;  // compute units one rank uses
  int microbatches = 1;      // per rank per step
  MemoryOptions memory;
  double memory_cap = 0;
};

Candidate::Candidate(const ModelConfig& m, int64_t vocab, const CostModel& c, const Layout& lay,
                     const SearchOptions& o)
    : model(m), cost(c), layout(lay), options(o), graph(build_layer_graph(m, vocab, lay.micro_batch_size, o.custom_layers)) {
  const bool half = o.precision != "fp32";
  layers = shard_graph(graph, m, lay.micro_batch_size, {lay.tp, lay.sequence_parallel, half ? 2 : 4});
  const ClusterModel& cluster = c.cluster();
  placement = place_ranks(cluster, o.world, lay.tp, lay.dp, lay.pp);
  threads_per_rank = o.threads_per_rank > 0 && cluster.oversubscribe ? std::min(o.threads_per_rank, placement.units_per_rank)
                                                                     : placement.units_per_rank;
  microbatches = o.global_batch_size / (lay.micro_batch_size * lay.dp);
  memory = layout_memory_options(lay, o);
  memory_cap = effective_memory_cap(cluster, o.world, o.memory_cap);
}

// Per layer and microbatch, in seconds: forward and backward with the tp collectives (and the
// ZeRO-2/3 waits) on the critical path, and the compute alone.
struct LayerTimes {
  std::vector<double> forward, backward, compute;
  std::vector<double> zero_wait;  // ZeRO-2/3: the stalls for the layer's dp collectives
  std::vector<double> zero_link;  // ZeRO-2/3: the layer's dp collectives (gathers, reduce-scatter)
  double zero_tail = 0;           // ZeRO-2/3: reduce-scatters left after layer 0's backward
};

// ZeRO-2/3 per microbatch: each layer is a unit whose gather (stage 3, before forward and
// again before backward) and gradient reduce-scatter share the dp link, overlapped with the
// neighbouring layers' compute (zero_model.h). The layers are taken as one sequence: a
// chunk's first unit is assumed prefetched while the rank waits for its pipeline input.
void add_zero_overlap(const Candidate& c, LayerTimes& t) {
  const Layout& lay = c.layout;
  if (lay.dp == 1 || lay.zero_stage < 2) return;
  const LinkModel& link = *c.placement.dp_link;
  const size_t n = c.layers.size();
  const bool mixed = c.memory.mixed_precision;
  // Full recompute gathers a unit again for the forward rerun inside its backward.
  const double backward_gathers = lay.recompute == Recompute::Full ? 2.0 : 1.0;
  std::vector<double> gather(n, 0.0), gather_bwd(n, 0.0), scatter(n, 0.0), none(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const double params = static_cast<double>(c.layers[i].params);
    if (lay.zero_stage == 3) gather[i] = link.all_gather_seconds(gather_element_bytes(mixed) * params, lay.dp);
    gather_bwd[i] = backward_gathers * gather[i];
    scatter[i] = link.reduce_scatter_seconds(grad_element_bytes(c.memory.bf16_grad_reduce) * params, lay.dp);
  }
  const UnitOverlap fwd = overlap_units(t.forward, gather, none, c.options.zero_prefetch);
  // Backward runs the units last to first.
  auto reversed = [](std::vector<double> v) { return std::vector<double>(v.rbegin(), v.rend()); };
  const UnitOverlap bwd =
      overlap_units(reversed(t.backward), reversed(gather_bwd), reversed(scatter), c.options.zero_prefetch);
  t.zero_wait.assign(n, 0.0);
  t.zero_link.assign(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    t.zero_link[i] = gather[i] + gather_bwd[i] + scatter[i];
    t.forward[i] += fwd.wait[i];
    t.backward[i] += bwd.wait[n - 1 - i];
    t.zero_wait[i] = fwd.wait[i] + bwd.wait[n - 1 - i];
  }
  t.backward[0] += bwd.tail;
  t.zero_tail = bwd.tail;
}

LayerTimes layer_times(const Candidate& c) {
  LayerTimes t;
  const Layout& lay = c.layout;
  for (const ShardedLayer& l : c.layers) {
    const double compute_fwd = c.cost.forward_seconds(l, c.threads_per_rank);
    double compute_bwd = c.cost.backward_seconds(l, c.threads_per_rank);
    const double comm_fwd = c.cost.tp_seconds(l.forward_comm, lay.tp, *c.placement.tp_link);
    double comm_bwd = c.cost.tp_seconds(l.backward_comm, lay.tp, *c.placement.tp_link);
    if (lay.recompute == Recompute::Full) {
      compute_bwd += compute_fwd;  // the forward runs again, with its collectives, before the backward
      comm_bwd += comm_fwd;
    } else if (lay.recompute == Recompute::Selective) {
      compute_bwd += c.cost.attention_recompute_seconds(l, c.threads_per_rank);
    }
    t.forward.push_back(compute_fwd + comm_fwd);
    t.backward.push_back(compute_bwd + comm_bwd);
    t.compute.push_back(compute_fwd + compute_bwd);
  }
  add_zero_overlap(c, t);
  return t;
}

// The balancer's split of the layers over the global stages under the memory cap, or why none
// fits (into `rejected`).
std::optional<std::vector<int>> balanced_split(const Candidate& c, const LayerTimes& t, Evaluation& rejected) {
  const Layout& lay = c.layout;
  BalanceProblem problem;
  for (size_t i = 0; i < c.layers.size(); ++i) problem.layer_cost.push_back(t.forward[i] + t.backward[i]);
  problem.stages = lay.pp;
  problem.virtual_stages = lay.virtual_stages;
  problem.memory_cap = c.memory_cap;
  MemoryOptions one_chunk = c.memory;
  one_chunk.virtual_stages = 1;
  one_chunk.schedule = lay.schedule == ScheduleKind::GPipe ? ScheduleKind::GPipe : ScheduleKind::OneFOneB;
  const RangeMemory range_memory(c.layers, one_chunk);
  const int v = lay.virtual_stages;
  problem.memory = [&](int stage, int, int first, int last) {
    // v == 1: the rank's exact memory. v > 1: as if the rank held v chunks like this one (the
    // exact per-rank total is checked afterwards).
    return v * static_cast<double>(range_memory.total(stage, first, last));
  };
  const BalanceResult balanced = balance_stages(problem);
  if (balanced.feasible) return balanced.counts;
  rejected.needs_bytes = balanced.min_max_memory;
  rejected.rejection = std::isinf(balanced.min_max_memory)
                           ? balanced.reason
                           : fmt::format("needs {} > {} cap", format_bytes(balanced.min_max_memory),
                                         format_bytes(c.memory_cap));
  return std::nullopt;
}

// The plan's description of the layout (no times or memory yet).
PartitionPlan describe_plan(const Candidate& c, const std::vector<int>& partition) {
  const Layout& lay = c.layout;
  const SearchOptions& o = c.options;
  PartitionPlan plan;
  plan.model = fmt::format("{} {}x{}, {:.2f}M params", c.model.arch, c.model.num_layers, c.model.hidden_size,
                           c.graph.total_params() / 1e6);
  plan.cluster = c.cost.cluster().name;
  plan.world = o.world;
  plan.dp = lay.dp;
  plan.tp = lay.tp;
  plan.pp = lay.pp;
  plan.virtual_stages = lay.virtual_stages;
  plan.micro_batch_size = lay.micro_batch_size;
  plan.microbatches = c.microbatches;
  plan.global_batch_size = o.global_batch_size;
  plan.seq_length = c.model.seq_length;
  plan.schedule = schedule_name(lay.schedule);
  plan.recompute = recompute_name(lay.recompute);
  plan.sequence_parallel = lay.sequence_parallel;
  plan.zero_stage = lay.zero_stage;
  plan.precision = o.precision;
  plan.partition = partition;
  return plan;
}

// The chunks of every pipeline rank.
std::vector<std::vector<LayerRange>> chunks_per_rank(const Candidate& c, const std::vector<int>& partition) {
  std::vector<std::vector<LayerRange>> chunks;
  for (int rank = 0; rank < c.layout.pp; ++rank) {
    chunks.push_back(rank_chunks(partition, c.layout.pp, c.layout.virtual_stages, rank));
  }
  return chunks;
}

// The pipeline as the simulator sees it: per global stage forward and backward times of one
// microbatch, one message per stage boundary; and per global stage its compute and tp time.
struct PipelineCosts {
  StageCosts stages;
  std::vector<double> stage_compute_s, stage_tp_s;
  double p2p_s = 0;
};

PipelineCosts pipeline_costs(const Candidate& c, const LayerTimes& t, const std::vector<int>& partition,
                             PartitionPlan& plan) {
  const int global_stages = static_cast<int>(partition.size());
  PipelineCosts pc;
  pc.stage_compute_s.assign(global_stages, 0.0);
  pc.stage_tp_s.assign(global_stages, 0.0);
  int64_t boundary_bytes = 0;
  int first = 0;
  for (int g = 0; g < global_stages; ++g) {
    const int last = first + partition[g];
    double forward = 0, backward = 0;
    for (int i = first; i < last; ++i) {
      forward += t.forward[i];
      backward += t.backward[i];
      pc.stage_compute_s[g] += t.compute[i];
      // What is not compute: the tp collectives, less ZeRO-2/3's dp stalls (reported with dp).
      const double zero = t.zero_wait.empty() ? 0.0 : t.zero_wait[i] + (i == 0 ? t.zero_tail : 0.0);
      pc.stage_tp_s[g] += t.forward[i] + t.backward[i] - t.compute[i] - zero;
    }
    pc.stages.forward_ms.push_back(forward * 1e3);
    pc.stages.backward_ms.push_back(backward * 1e3);
    plan.stage_time_s.push_back(forward + backward);
    if (g + 1 < global_stages) boundary_bytes = std::max(boundary_bytes, c.layers[last - 1].output_bytes);
    first = last;
  }
  pc.p2p_s = global_stages > 1 ? c.placement.pp_link->p2p_seconds(static_cast<double>(boundary_bytes)) : 0.0;
  pc.stages.p2p_ms = pc.p2p_s * 1e3;
  return pc;
}

// One pipeline rank's part of the step after its last backward: the data-parallel gradient
// reduction, or the local SGD / DiLoCo outer sync (what of it is exposed), and the optimizer
// step; its traffic.
struct RankTail {
  double dp_comm_s = 0, dp_exposed_s = 0, optimizer_s = 0, dp_bytes = 0;
  double after_pipeline_s = 0;  // the exposed part that follows the pipeline (not ZeRO-2/3's stalls)
};

// ZeRO-2/3 over a step, from the rank's layers: their collectives unit by unit (link) and the
// stalls they caused (exposed, already in the pipeline's times, reported here).
struct ZeroStep {
  double link_s = 0, exposed_s = 0;
};

RankTail rank_tail(const Candidate& c, int64_t params, double last_backward_s, double pipeline_end_s,
                   const ZeroStep& zero) {
  const Layout& lay = c.layout;
  const LinkModel& dp_link = *c.placement.dp_link;
  const int stage = lay.dp > 1 ? lay.zero_stage : 0;
  const int m = c.microbatches;
  const bool local_sync = c.options.data_parallel_sync != "allreduce";
  // Gradients on the link (fp32 or bf16); the parameters gathered after an update are fp32.
  const double grads = static_cast<double>(grad_element_bytes(c.memory.bf16_grad_reduce) * params);
  const double weights = 4.0 * static_cast<double>(params);
  RankTail tail;
  const double scatter = dp_link.reduce_scatter_seconds(grads, lay.dp);
  const double gather = dp_link.all_gather_seconds(weights, lay.dp);
  if (lay.dp > 1 && local_sync) {
    // Local SGD / DiLoCo: a sync of the parameters every H steps (partitioner/outer_sync_cost.h).
    OuterSyncCostOptions outer = c.options.outer;
    outer.sharded = stage >= 1;
    const DpCommCost cost = outer_sync_cost(dp_link, params, lay.dp, outer, pipeline_end_s);
    tail.dp_comm_s = cost.comm_s;
    tail.dp_exposed_s = tail.after_pipeline_s = cost.exposed_s;
  } else if (stage == 1) {
    // Reduce-scatter after the backward, all-gather after the step: nothing overlaps.
    tail.dp_comm_s = tail.dp_exposed_s = tail.after_pipeline_s = scatter + gather;
  } else if (stage == 2) {
    // Every microbatch's reduce-scatters run inside its backward; the all-gather after the step.
    tail.dp_comm_s = zero.link_s + gather;
    tail.dp_exposed_s = zero.exposed_s + gather;
    tail.after_pipeline_s = gather;
  } else if (stage == 3) {
    // Everything runs inside the forward and backward passes; no gather after the step.
    tail.dp_comm_s = zero.link_s;
    tail.dp_exposed_s = zero.exposed_s;
  } else if (lay.dp > 1) {
    // Buckets go out as the last microbatch's backward completes their layers; what does not
    // fit behind that backward, and at least the last bucket, is exposed.
    tail.dp_comm_s = dp_link.all_reduce_seconds(grads, lay.dp);
    // A bucket holds bucket_bytes of fp32 gradients, sent in the reduce precision.
    const double bucket = c.options.bucket_bytes * grad_element_bytes(c.memory.bf16_grad_reduce) / 4.0;
    const double last_bucket = dp_link.all_reduce_seconds(std::min(grads, bucket), lay.dp);
    tail.dp_exposed_s = tail.after_pipeline_s = std::max(tail.dp_comm_s - last_backward_s, last_bucket);
  }
  if (!local_sync) {
    tail.dp_bytes = dp_traffic_bytes(params, lay.dp, stage, m, c.memory.mixed_precision, c.memory.bf16_grad_reduce,
                                     lay.recompute == Recompute::Full)
                        .total();
  }
  // Each local SGD / DiLoCo replica keeps its whole AdamW (ZeRO shards only its outer state).
  const bool sharded_optimizer = stage >= 1 && !local_sync;
  tail.optimizer_s =
      c.cost.optimizer_seconds(sharded_optimizer ? (params + lay.dp - 1) / lay.dp : params, c.threads_per_rank);
  return tail;
}

// The step time: the slowest rank's end of pipeline plus its tail, bounded below by the cores
// when ranks oversubscribe them; the breakdown, tokens/s, MFU and the bubble.
void time_the_step(const Candidate& c, const LayerTimes& t, const PipelineCosts& pc, const SimulationResult& sim,
                   const std::vector<std::vector<LayerRange>>& chunks, PartitionPlan& plan) {
  const Layout& lay = c.layout;
  const int pp = lay.pp, v = lay.virtual_stages, m = c.microbatches;
  StepBreakdown& bd = plan.breakdown;
  bd.pipeline_s = sim.makespan_ms / 1e3;
  bd.p2p_s = pc.p2p_s;
  double step = 0, busiest = 0, total_work = 0;
  for (int rank = 0; rank < pp; ++rank) {
    int64_t params = 0;
    double work = 0, tp_time = 0;
    ZeroStep zero;
    for (int chunk = 0; chunk < v; ++chunk) {
      for (int i = chunks[rank][chunk].first; i < chunks[rank][chunk].last; ++i) {
        params += c.layers[i].params;
        if (t.zero_wait.empty()) continue;
        zero.exposed_s += m * (t.zero_wait[i] + (i == 0 ? t.zero_tail : 0.0));
        zero.link_s += m * t.zero_link[i];
      }
      work += m * pc.stage_compute_s[chunk * pp + rank];
      tp_time += m * pc.stage_tp_s[chunk * pp + rank];
    }
    const double pipeline_end = sim.timeline[rank].empty() ? sim.makespan_ms / 1e3 : sim.timeline[rank].back().end_ms / 1e3;
    // Chunk 0 runs the rank's last backward.
    const RankTail tail = rank_tail(c, params, pc.stages.backward_ms[rank] / 1e3, pipeline_end, zero);
    const double rank_step = pipeline_end + tail.after_pipeline_s + tail.optimizer_s;
    if (rank_step > step) {
      step = rank_step;
      bd.dp_comm_s = tail.dp_comm_s;
      bd.dp_exposed_s = tail.dp_exposed_s;
      bd.dp_bytes = tail.dp_bytes;
      bd.optimizer_s = tail.optimizer_s;
    }
    if (work > busiest) {
      busiest = work;
      bd.compute_s = work;
      bd.tp_comm_s = tp_time;
    }
    total_work += (work + tail.optimizer_s) * lay.dp * lay.tp;
  }
  // More ranks than cores on a CPU node: the cores bound the step from below (waiting ranks
  // sleep between polls, so they leave the cores to the ranks that compute).
  const ClusterModel& cluster = c.cost.cluster();
  if (c.placement.oversubscription > 1) {
    const double bound = total_work / (static_cast<double>(cluster.devices_per_node) * c.placement.nodes);
    bd.contention_s = std::max(0.0, bound - step);
    step += bd.contention_s;
  }
  plan.step_time_s = step;
  const double tokens = static_cast<double>(c.options.global_batch_size) * c.model.seq_length;
  plan.tokens_per_s = tokens / step;
  const double peak = c.cost.rank_peak_flops(c.threads_per_rank) / c.placement.oversubscription * c.options.world;
  // Model FLOPs only (a recomputed forward is not useful work), as the trainer counts MFU.
  plan.mfu = c.graph.flops_per_token() * tokens / step / peak;
  double max_busy = 0;
  for (double b : sim.busy_ms) max_busy = std::max(max_busy, b);
  plan.bubble = sim.makespan_ms > 0 ? 1.0 - max_busy / sim.makespan_ms : 0.0;
}

}  // namespace

Evaluation evaluate_layout(const ModelConfig& model, int64_t vocab, const CostModel& cost, const Layout& layout,
                           const SearchOptions& o, const std::vector<int>& fixed_partition) {
  const int custom = static_cast<int>(o.custom_layers.size());
  if (auto e = layout_error(model, layout, o.world, o.global_batch_size, custom)) {
    TESSERA_REQUIRE(false, "{}: {}", layout.label(), *e);
  }
  const Candidate c(model, vocab, cost, layout, o);
  const LayerTimes times = layer_times(c);
  Evaluation ev;
  std::vector<int> partition = fixed_partition;
  if (partition.empty()) {
    std::optional<std::vector<int>> split = balanced_split(c, times, ev);
    if (!split) return ev;
    partition = std::move(*split);
  } else {
    const std::optional<std::string> e = partition_error(model, layout, o, partition);
    TESSERA_REQUIRE(!e, "{}", e.value_or(""));
  }
  PartitionPlan plan = describe_plan(c, partition);

  // Memory per pipeline rank, exactly (all its chunks, the schedule's in-flight peak).
  const std::vector<std::vector<LayerRange>> chunks = chunks_per_rank(c, partition);
  for (int rank = 0; rank < layout.pp; ++rank) plan.memory.push_back(stage_memory(c.layers, chunks[rank], rank, c.memory));
  if (static_cast<double>(plan.peak_memory()) > c.memory_cap) {
    ev.needs_bytes = static_cast<double>(plan.peak_memory());
    ev.rejection = fmt::format("needs {} > {} cap", format_bytes(ev.needs_bytes), format_bytes(c.memory_cap));
    return ev;
  }

  const PipelineCosts pc = pipeline_costs(c, times, partition, plan);
  const SimulationResult sim = simulate(layout.schedule, layout.pp, c.microbatches, layout.virtual_stages, pc.stages);
  TESSERA_CHECK(sim.ok(), "schedule simulation of {} failed: {}", layout.label(), sim.error);
  time_the_step(c, times, pc, sim, chunks, plan);
  ev.plan = std::move(plan);
  return ev;
}

}  // namespace tessera
