// Layout search: validity rules, one layout's evaluation (balance, simulate, size), ranking.
#include "partitioner/layout_search.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "partitioner/layer_graph.h"
#include "partitioner/schedule_sim.h"
#include "partitioner/stage_balancer.h"
#include "core/error.h"

namespace tessera {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// + embedding and head, and an embedding program's custom layers
int graph_layers(const ModelConfig& m, int custom_layers) { return m.num_layers + 2 + custom_layers; }

std::optional<std::string> tp_error(const ModelConfig& m, int tp) {
  auto divides = [&](const char* what, int64_t n) -> std::optional<std::string> {
    if (n % tp == 0) return std::nullopt;
    if (tp > n) return fmt::format("tp = {} > {} {}", tp, what, n);
    return fmt::format("{} {} not divisible by tp = {}", what, n, tp);
  };
  if (m.arch == "gpt" || m.arch == "llama") {
    // llama's key/value groups are split over tp like its query heads (never replicated).
    for (auto [what, n] : {std::pair<const char*, int64_t>{"heads", m.num_attention_heads},
                           {"key/value groups", m.arch == "llama" ? query_groups(m) : m.num_attention_heads},
                           {"hidden_size", m.hidden_size},
                           {"ffn_hidden_size", ffn_size(m)}}) {
      if (auto e = divides(what, n)) return e;
    }
    return std::nullopt;
  }
  return divides("hidden_size", m.hidden_size);
}

std::optional<std::string> stages_error(const ModelConfig& m, int pp, int v, int custom_layers) {
  if (pp * v <= graph_layers(m, custom_layers)) return std::nullopt;
  return fmt::format("pp x v = {} stages > {} layers (num_layers {} + embedding + head{})", pp * v,
                     graph_layers(m, custom_layers), m.num_layers,
                     custom_layers > 0 ? fmt::format(" + {} custom", custom_layers) : "");
}

std::optional<std::string> schedule_error(ScheduleKind kind, int pp, int m, int v) {
  if (kind != ScheduleKind::Interleaved) return std::nullopt;
  if (pp < 2) return std::string("interleaved needs pp >= 2");
  if (v < 2) return std::string("interleaved needs virtual stages > 1");
  if (m % pp != 0) return fmt::format("interleaved needs microbatches divisible by pp {}, not {}", pp, m);
  return std::nullopt;
}

std::optional<std::string> sp_error(const ModelConfig& m, int tp, bool sp) {
  if (!sp) return std::nullopt;
  if (m.arch == "mlp") return std::string("sequence parallelism is for gpt and llama models only");
  if (tp < 2) return std::string("sequence parallelism needs tp > 1");
  if (m.seq_length % tp != 0) return fmt::format("seq_length {} not divisible by tp = {}", m.seq_length, tp);
  return std::nullopt;
}

std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i) {
    if (n % i == 0) d.push_back(i);
  }
  return d;
}

// Chunk ranges of pipeline rank s (global stages c * pp + s) from per-global-stage counts.
std::vector<LayerRange> rank_chunks(const std::vector<int>& counts, int pp, int v, int s) {
  std::vector<int> start(counts.size() + 1, 0);
  for (size_t g = 0; g < counts.size(); ++g) start[g + 1] = start[g] + counts[g];
  std::vector<LayerRange> r;
  for (int c = 0; c < v; ++c) {
    const int g = c * pp + s;
    r.push_back({start[g], start[g + 1]});
  }
  return r;
}

}  // namespace

std::string Layout::label() const {
  std::string s = fmt::format("dp{} tp{} pp{}", dp, tp, pp);
  if (pp > 1) s += fmt::format(" {}", schedule_name(schedule));
  if (virtual_stages > 1) s += fmt::format(" v{}", virtual_stages);
  s += fmt::format(" mb{}", micro_batch_size);
  if (recompute != Recompute::None) s += fmt::format(" rc={}", recompute_name(recompute));
  if (zero_stage > 0) s += fmt::format(" zero{}", zero_stage);
  if (sequence_parallel) s += " sp";
  return s;
}

double effective_memory_cap(const ClusterModel& c, int world, double cap) {
  if (cap > 0) return cap;
  if (!c.oversubscribe && c.device.memory_bytes > 0) return c.device.memory_bytes;
  if (c.node_memory_bytes > 0) {
    const int nodes = c.nodes > 0 ? c.nodes : 1;
    const int per_node = c.oversubscribe ? (world + nodes - 1) / nodes : std::min(world, c.devices_per_node);
    return c.node_memory_bytes / per_node;
  }
  return c.device.memory_bytes > 0 ? c.device.memory_bytes : kInf;
}

std::optional<std::string> layout_error(const ModelConfig& m, const Layout& l, int world, int global_batch,
                                        int custom_layers) {
  if (l.dp * l.tp * l.pp != world) {
    return fmt::format("dp {} x tp {} x pp {} != world {}", l.dp, l.tp, l.pp, world);
  }
  if (auto e = tp_error(m, l.tp)) return e;
  if (auto e = sp_error(m, l.tp, l.sequence_parallel)) return e;
  if (auto e = stages_error(m, l.pp, l.virtual_stages, custom_layers)) return e;
  if (l.schedule != ScheduleKind::Interleaved && l.virtual_stages != 1) {
    return std::string("virtual stages > 1 need the interleaved schedule");
  }
  if (global_batch % (l.micro_batch_size * l.dp) != 0) {
    return fmt::format("global batch {} not divisible by micro batch {} x dp {}", global_batch,
                       l.micro_batch_size, l.dp);
  }
  const int mbs = global_batch / (l.micro_batch_size * l.dp);
  return schedule_error(l.schedule, l.pp, mbs, l.virtual_stages);
}

Evaluation evaluate_layout(const ModelConfig& model, int64_t vocab, const CostModel& cost, const Layout& lay,
                           const SearchOptions& o, const std::vector<int>& fixed_partition) {
  const int custom = static_cast<int>(o.custom_layers.size());
  if (auto e = layout_error(model, lay, o.world, o.global_batch_size, custom)) {
    TESSERA_REQUIRE(false, "{}: {}", lay.label(), *e);
  }
  const ClusterModel& cl = cost.cluster();
  const int p = lay.pp, v = lay.virtual_stages, G = p * v;
  const int m = o.global_batch_size / (lay.micro_batch_size * lay.dp);
  const LayerGraph graph = build_layer_graph(model, vocab, lay.micro_batch_size, o.custom_layers);
  const bool half = o.precision != "fp32";
  const std::vector<ShardedLayer> layers =
      shard_graph(graph, model, lay.micro_batch_size, {lay.tp, lay.sequence_parallel, half ? 2 : 4});
  const int L = static_cast<int>(layers.size());
  const RankPlacement place = place_ranks(cl, o.world, lay.tp, lay.dp, lay.pp);
  const int units = o.threads_per_rank > 0 && cl.oversubscribe ? std::min(o.threads_per_rank, place.units_per_rank)
                                                                 : place.units_per_rank;

  // Per layer and microbatch: compute, and the tp collectives that sit on the critical path.
  std::vector<double> fwd(L), bwd(L), compute(L);
  for (int i = 0; i < L; ++i) {
    const ShardedLayer& l = layers[i];
    double cf = cost.forward_seconds(l, units), cb = cost.backward_seconds(l, units);
    const double tf = cost.tp_seconds(l.forward_comm, lay.tp, *place.tp_link);
    double tb = cost.tp_seconds(l.backward_comm, lay.tp, *place.tp_link);
    if (lay.recompute == Recompute::Full) {
      cb += cf;  // the forward runs again, with its collectives, before the backward
      tb += tf;
    } else if (lay.recompute == Recompute::Selective) {
      cb += cost.attention_recompute_seconds(l, units);
    }
    fwd[i] = cf + tf;
    bwd[i] = cb + tb;
    compute[i] = cf + cb;
  }

  MemoryOptions mo{lay.tp, lay.dp, p, v, m, lay.schedule, lay.recompute, lay.zero_stage, o.bucket_bytes, half};
  const double cap = effective_memory_cap(cl, o.world, o.memory_cap);
  std::vector<int> counts = fixed_partition;
  Evaluation ev;
  if (counts.empty()) {
    BalanceProblem pb;
    for (int i = 0; i < L; ++i) pb.layer_cost.push_back(fwd[i] + bwd[i]);
    pb.stages = p;
    pb.virtual_stages = v;
    pb.memory_cap = cap;
    MemoryOptions chunk_mo = mo;
    chunk_mo.virtual_stages = 1;
    chunk_mo.schedule = lay.schedule == ScheduleKind::GPipe ? ScheduleKind::GPipe : ScheduleKind::OneFOneB;
    const RangeMemory range_memory(layers, chunk_mo);
    pb.memory = [&](int s, int, int first, int last) {
      // v == 1: the rank's exact memory. v > 1: as if the rank held v chunks like this one (the
      // exact per-rank total is checked below).
      return v * static_cast<double>(range_memory.total(s, first, last));
    };
    const BalanceResult br = balance_stages(pb);
    if (!br.feasible) {
      ev.needs_bytes = br.min_max_memory;
      ev.rejection = std::isinf(br.min_max_memory)
                         ? br.reason
                         : fmt::format("needs {} > {} cap", format_bytes(br.min_max_memory), format_bytes(cap));
      return ev;
    }
    counts = br.counts;
  } else {
    int sum = 0;
    for (int c : counts) sum += c;
    TESSERA_REQUIRE(static_cast<int>(counts.size()) == G && sum == L,
                    "partition must have pp x v = {} entries summing to {} layers", G, L);
  }

  PartitionPlan plan;
  plan.model = fmt::format("{} {}x{}, {:.2f}M params", model.arch, model.num_layers, model.hidden_size,
                           graph.total_params() / 1e6);
  plan.cluster = cl.name;
  plan.world = o.world;
  plan.dp = lay.dp;
  plan.tp = lay.tp;
  plan.pp = p;
  plan.virtual_stages = v;
  plan.micro_batch_size = lay.micro_batch_size;
  plan.microbatches = m;
  plan.global_batch_size = o.global_batch_size;
  plan.seq_length = model.seq_length;
  plan.schedule = schedule_name(lay.schedule);
  plan.recompute = recompute_name(lay.recompute);
  plan.sequence_parallel = lay.sequence_parallel;
  plan.zero_stage = lay.zero_stage;
  plan.precision = o.precision;
  plan.partition = counts;

  // Memory per pipeline rank, exactly (all its chunks, the schedule's in-flight peak).
  std::vector<std::vector<LayerRange>> chunks(p);
  for (int s = 0; s < p; ++s) {
    chunks[s] = rank_chunks(counts, p, v, s);
    plan.memory.push_back(stage_memory(layers, chunks[s], s, mo));
  }
  if (static_cast<double>(plan.peak_memory()) > cap) {
    ev.needs_bytes = static_cast<double>(plan.peak_memory());
    ev.rejection = fmt::format("needs {} > {} cap", format_bytes(static_cast<double>(plan.peak_memory())),
                               format_bytes(cap));
    return ev;
  }

  // The pipeline: per global stage times, one message per boundary.
  StageCosts sc;
  int64_t boundary = 0;
  std::vector<double> stage_compute(G, 0.0), stage_tp(G, 0.0);
  int first = 0;
  for (int g = 0; g < G; ++g) {
    const int last = first + counts[g];
    double f = 0, b = 0;
    for (int i = first; i < last; ++i) {
      f += fwd[i];
      b += bwd[i];
      stage_compute[g] += compute[i];
      stage_tp[g] += fwd[i] + bwd[i] - compute[i];
    }
    sc.forward_ms.push_back(f * 1e3);
    sc.backward_ms.push_back(b * 1e3);
    plan.stage_time_s.push_back(f + b);
    if (g + 1 < G) boundary = std::max(boundary, layers[last - 1].output_bytes);
    first = last;
  }
  const double p2p_s = G > 1 ? place.pp_link->p2p_seconds(static_cast<double>(boundary)) : 0.0;
  sc.p2p_ms = p2p_s * 1e3;
  const SimulationResult sim = simulate(lay.schedule, p, m, v, sc);
  TESSERA_CHECK(sim.ok(), "schedule simulation of {} failed: {}", lay.label(), sim.error);

  // After its last backward each rank reduces its gradients over dp and steps the optimizer.
  StepBreakdown& bd = plan.breakdown;
  bd.pipeline_s = sim.makespan_ms / 1e3;
  bd.p2p_s = p2p_s;
  const bool zero = lay.zero_stage >= 1 && lay.dp > 1;
  const bool local_sync = o.data_parallel_sync != "allreduce";
  double step = 0, busiest = 0, total_work = 0;
  for (int s = 0; s < p; ++s) {
    int64_t params = 0;
    double work = 0, tp_time = 0;
    for (int c = 0; c < v; ++c) {
      for (int i = chunks[s][c].first; i < chunks[s][c].last; ++i) params += layers[i].params;
      work += m * stage_compute[c * p + s];
      tp_time += m * stage_tp[c * p + s];
    }
    const double bytes = 4.0 * static_cast<double>(params);  // fp32 gradients
    double end = sim.makespan_ms / 1e3;
    if (!sim.timeline[s].empty()) end = sim.timeline[s].back().end_ms / 1e3;
    double dp_comm = 0, exposed = 0;
    if (lay.dp > 1 && local_sync) {
      // Local SGD / DiLoCo: a sync of the parameters every H steps (partitioner/outer_sync_cost.h).
      OuterSyncCostOptions outer = o.outer;
      outer.sharded = zero;
      const DpCommCost c = outer_sync_cost(*place.dp_link, params, lay.dp, outer, end);
      dp_comm = c.comm_s;
      exposed = c.exposed_s;
    } else if (lay.dp > 1 && zero) {
      // ZeRO-1: reduce-scatter after the backward, all-gather after the step: nothing overlaps.
      dp_comm = exposed = place.dp_link->reduce_scatter_seconds(bytes, lay.dp) +
                          place.dp_link->all_gather_seconds(bytes, lay.dp);
    } else if (lay.dp > 1) {
      // Buckets go out as the last microbatch's backward completes their layers; what does not
      // fit behind that backward, and at least the last bucket, is exposed.
      dp_comm = place.dp_link->all_reduce_seconds(bytes, lay.dp);
      const double last_backward = sc.backward_ms[s] / 1e3;  // chunk 0 runs the rank's last backward
      const double last_bucket = place.dp_link->all_reduce_seconds(std::min(bytes, o.bucket_bytes), lay.dp);
      exposed = std::max(dp_comm - last_backward, last_bucket);
    }
    // Each local SGD / DiLoCo replica keeps its whole AdamW (ZeRO shards only its outer state).
    const double opt = cost.optimizer_seconds(zero && !local_sync ? (params + lay.dp - 1) / lay.dp : params, units);
    const double rank_step = end + exposed + opt;
    if (rank_step > step) {
      step = rank_step;
      bd.dp_comm_s = dp_comm;
      bd.dp_exposed_s = exposed;
      bd.optimizer_s = opt;
    }
    if (work > busiest) {
      busiest = work;
      bd.compute_s = work;
      bd.tp_comm_s = tp_time;
    }
    total_work += (work + opt) * lay.dp * lay.tp;
  }
  // More ranks than cores on a CPU node: the cores bound the step from below (waiting ranks
  // sleep between polls, so they leave the cores to the ranks that compute).
  if (place.oversubscription > 1) {
    const double bound = total_work / (static_cast<double>(cl.devices_per_node) * place.nodes);
    bd.contention_s = std::max(0.0, bound - step);
    step += bd.contention_s;
  }
  plan.step_time_s = step;
  const double tokens = static_cast<double>(o.global_batch_size) * model.seq_length;
  plan.tokens_per_s = tokens / step;
  const double peak = cost.rank_peak_flops(units) / place.oversubscription * o.world;
  // Model FLOPs only (a recomputed forward is not useful work), as the trainer counts MFU.
  plan.mfu = graph.flops_per_token() * tokens / step / peak;
  double max_busy = 0;
  for (double b : sim.busy_ms) max_busy = std::max(max_busy, b);
  plan.bubble = sim.makespan_ms > 0 ? 1.0 - max_busy / sim.makespan_ms : 0.0;
  ev.plan = std::move(plan);
  return ev;
}

SearchResult search_layouts(const ModelConfig& model, int64_t vocab, const CostModel& cost, const SearchOptions& o) {
  TESSERA_REQUIRE(o.world >= 1, "world size {} must be >= 1", o.world);
  TESSERA_REQUIRE(o.global_batch_size >= 1, "global batch size {} must be >= 1", o.global_batch_size);
  const int custom = static_cast<int>(o.custom_layers.size());
  SearchResult r;
  auto reject = [&](std::string layout, std::string reason) { r.rejected.push_back({std::move(layout), std::move(reason)}); };
  std::vector<int> micros;
  for (int b : o.micro_batch_sizes.empty() ? std::vector<int>{1, 2, 4, 8} : o.micro_batch_sizes) {
    if (b >= 1 && std::find(micros.begin(), micros.end(), b) == micros.end()) micros.push_back(b);
  }
  std::sort(micros.begin(), micros.end());
  const bool try_interleaved =
      std::find(o.schedules.begin(), o.schedules.end(), ScheduleKind::Interleaved) != o.schedules.end();
  for (int tp : divisors(o.world)) {
    if (auto e = tp_error(model, tp)) {
      reject(fmt::format("tp{}", tp), *e);
      continue;
    }
    // Sequence parallelism is decided by tp alone.
    std::vector<bool> sps;
    for (bool sp : o.sequence_parallel) {
      if (sp && (tp == 1 || model.arch == "mlp")) continue;  // nothing to shard: not a layout
      if (auto e = sp_error(model, tp, sp)) {
        reject(fmt::format("tp{} sp", tp), *e);
        continue;
      }
      sps.push_back(sp);
    }
    for (int pp : divisors(o.world / tp)) {
      const int dp = o.world / (tp * pp);
      const std::string where = fmt::format("dp{} tp{} pp{}", dp, tp, pp);
      if (auto e = stages_error(model, pp, 1, custom)) {
        reject(fmt::format("tp{} pp{}", tp, pp), *e);
        continue;
      }
      std::vector<int> valid;
      for (int b : micros) {
        if (o.global_batch_size % (b * dp) == 0) valid.push_back(b);
      }
      if (valid.empty()) {
        reject(where, fmt::format("global batch {} not divisible by dp {} x any micro batch in [{}]",
                                  o.global_batch_size, dp, fmt::join(micros, ", ")));
        continue;
      }
      // Interleaving: the virtual stages that fit the layers, and the micro batches whose
      // microbatch count pp divides; one line for each kind of failure.
      int max_v = 0;
      std::vector<int> bad_micro, bad_m;
      if (try_interleaved && pp >= 2) {
        max_v = std::min(o.max_virtual_stages, graph_layers(model, custom) / pp);
        if (max_v < 2 && o.max_virtual_stages >= 2) reject(where + " interleaved", *stages_error(model, pp, 2, custom));
        for (int b : valid) {
          const int m = o.global_batch_size / (b * dp);
          if (max_v >= 2 && m % pp != 0) {
            bad_micro.push_back(b);
            bad_m.push_back(m);
          }
        }
        if (!bad_micro.empty()) {
          reject(fmt::format("{} interleaved mb{}", where, fmt::join(bad_micro, ",")),
                 fmt::format("interleaved needs microbatches divisible by pp {}, not {}", pp, fmt::join(bad_m, ", ")));
        }
      }
      for (int b : valid) {
        const int m = o.global_batch_size / (b * dp);
        for (ScheduleKind kind : o.schedules) {
          // One pipeline stage: the schedules are the same; keep 1F1B's name.
          if (pp == 1 && kind != ScheduleKind::OneFOneB) continue;
          std::vector<int> vs = {1};
          if (kind == ScheduleKind::Interleaved) {
            vs.clear();
            if (pp >= 2 && m % pp == 0) {
              for (int v = 2; v <= max_v; ++v) vs.push_back(v);
            }
          }
          for (int v : vs) {
            for (Recompute rc : o.recompute) {
              // Selective recompute drops attention probabilities: an mlp has none.
              if (rc == Recompute::Selective && model.arch == "mlp") continue;
              for (int zero : o.zero_stages) {
                if (zero > 0 && dp == 1) continue;  // ZeRO shards over dp: nothing to shard
                for (bool sp : sps) {
                  const Layout lay{dp, tp, pp, v, b, kind, rc, zero, sp};
                  ++r.evaluated;
                  Evaluation ev = evaluate_layout(model, vocab, cost, lay, o);
                  if (ev.plan) {
                    r.plans.push_back(std::move(*ev.plan));
                  } else {
                    r.rejected.push_back({lay.label(), ev.rejection, ev.needs_bytes});
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  std::stable_sort(r.plans.begin(), r.plans.end(), [](const PartitionPlan& a, const PartitionPlan& b) {
    if (a.step_time_s != b.step_time_s) return a.step_time_s < b.step_time_s;
    return a.peak_memory() < b.peak_memory();
  });
  return r;
}

Layout config_layout(const Config& c, int world) {
  const ParallelConfig& p = c.parallel;
  Layout l;
  l.tp = p.tensor_model_parallel_size;
  l.pp = p.pipeline_model_parallel_size;
  TESSERA_REQUIRE(l.tp >= 1 && l.pp >= 1 && world % (l.tp * l.pp) == 0,
                  "world size {} is not divisible by tp {} x pp {}", world, l.tp, l.pp);
  l.dp = p.data_parallel_size > 0 ? p.data_parallel_size : world / (l.tp * l.pp);
  l.virtual_stages = p.virtual_stages;
  l.micro_batch_size = c.train.micro_batch_size;
  l.schedule = parse_schedule(p.schedule);
  l.recompute = parse_recompute(p.recompute);
  l.zero_stage = p.zero_stage;
  l.sequence_parallel = p.sequence_parallel;
  return l;
}

SearchOptions search_options_from_config(const Config& c, int world) {
  SearchOptions o;
  o.world = world;
  o.global_batch_size = c.train.global_batch_size;
  o.bucket_bytes = c.parallel.bucket_mb * (1 << 20);
  o.precision = c.train.precision;
  o.threads_per_rank = c.train.threads;
  o.data_parallel_sync = c.parallel.data_parallel_sync;
  o.outer = outer_sync_cost_options(c.parallel);
  return o;
}

PartitionPlan plan_config_layout(const Config& c, int64_t vocab, int world, const CostModel& cost,
                                 const std::vector<int>& fixed_partition) {
  SearchOptions o = search_options_from_config(c, world);
  o.memory_cap = std::numeric_limits<double>::max();
  Evaluation ev = evaluate_layout(c.model, vocab, cost, config_layout(c, world), o, fixed_partition);
  TESSERA_CHECK(ev.plan.has_value(), "no plan for the config's layout: {}", ev.rejection);
  return std::move(*ev.plan);
}

}  // namespace tessera
