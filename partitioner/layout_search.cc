// Layout search: the layout rules as the planner states them, the search as an enumerator of
// candidate layouts (families of (dp, tp, pp), then each dimension a layout may vary), and the
// config's own layout. One layout's evaluation is layout_evaluation.cc.
#include "partitioner/layout_search.h"

#include <algorithm>
#include <limits>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "partitioner/layer_graph.h"
#include "partitioner/layout_rules.h"
#include "partitioner/partition_choice.h"
#include "core/error.h"

namespace tessera {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The planner's short reason for the first layout rule the facts break (partitioner/layout_rules).
std::optional<std::string> rule_error(const ModelConfig& m, const LayoutFacts& facts) {
  if (auto v = first_layout_violation(m, facts)) return v->brief;
  return std::nullopt;
}

std::optional<std::string> tp_error(const ModelConfig& m, int tp) {
  LayoutFacts facts;
  facts.tp = tp;
  return rule_error(m, facts);
}

std::optional<std::string> stages_error(const ModelConfig& m, int pp, int v, int custom_layers) {
  LayoutFacts facts;
  facts.pp = pp;
  facts.virtual_stages = v;
  facts.schedule = v > 1 ? ScheduleKind::Interleaved : ScheduleKind::OneFOneB;
  facts.custom_layers = custom_layers;
  return rule_error(m, facts);
}

// Not a rule of the runtime (it runs sequence_parallel with tp 1, as a no-op), but a layout
// the search need not list: nothing is sharded.
std::optional<std::string> sp_pointless(const ModelConfig& m, int tp, bool sp) {
  if (!sp) return std::nullopt;
  if (m.arch == "mlp") return std::string("sequence parallelism is for gpt and llama models only");
  if (tp < 2) return std::string("sequence parallelism needs tp > 1");
  return std::nullopt;
}

// With tp valid for the model: why sequence parallelism is not, or nullopt.
std::optional<std::string> sequence_parallel_error(const ModelConfig& m, int tp) {
  LayoutFacts facts;
  facts.tp = tp;
  facts.sequence_parallel = true;
  return rule_error(m, facts);
}

// The facts of a candidate layout, for the rules.
LayoutFacts candidate_facts(const Layout& l, int global_batch, int custom_layers,
                            const std::vector<int>& partition = {}) {
  LayoutFacts f;
  f.tp = l.tp;
  f.pp = l.pp;
  f.virtual_stages = l.virtual_stages;
  f.schedule = l.schedule;
  f.sequence_parallel = l.sequence_parallel;
  f.partition = partition;
  f.custom_layers = custom_layers;
  f.dp = l.dp;
  f.micro_batch_size = l.micro_batch_size;
  f.global_batch_size = global_batch;
  return f;
}

std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i) {
    if (n % i == 0) d.push_back(i);
  }
  return d;
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
  if (auto e = sp_pointless(m, l.tp, l.sequence_parallel)) return e;
  return rule_error(m, candidate_facts(l, global_batch, custom_layers));
}

std::optional<std::string> partition_error(const ModelConfig& model, const Layout& layout, const SearchOptions& o,
                                           const std::vector<int>& partition) {
  return rule_error(model, candidate_facts(layout, o.global_batch_size, static_cast<int>(o.custom_layers.size()),
                                           partition));
}

namespace {

// One (dp, tp, pp) family of the search and what its layouts may vary: the micro batches whose
// microbatch count divides the global batch, the virtual stages interleaving can use (0: none),
// and the sequence-parallel choices.
struct Family {
  int dp = 1, tp = 1, pp = 1;
  std::vector<int> micro_batches;
  int max_virtual_stages = 0;
  std::vector<bool> sequence_parallel;
  std::string name() const { return fmt::format("dp{} tp{} pp{}", dp, tp, pp); }
};

// Each layout of `in` times each of options_of(layout): the next dimension of the search, the
// earlier dimensions varying slowest (their order is the preference where layouts tie).
template <typename OptionsOf>
std::vector<Layout> expand(const std::vector<Layout>& in, OptionsOf options_of) {
  std::vector<Layout> out;
  for (const Layout& l : in) {
    for (const Layout& x : options_of(l)) out.push_back(x);
  }
  return out;
}

// The layouts of one family: micro batch, schedule, virtual stages, recompute, ZeRO stage,
// sequence parallelism.
std::vector<Layout> family_layouts(const ModelConfig& model, const SearchOptions& o, const Family& f) {
  Layout base;
  base.dp = f.dp;
  base.tp = f.tp;
  base.pp = f.pp;
  std::vector<Layout> layouts = {base};
  layouts = expand(layouts, [&](const Layout& l) {
    std::vector<Layout> out;
    for (int b : f.micro_batches) out.push_back(l), out.back().micro_batch_size = b;
    return out;
  });
  layouts = expand(layouts, [&](const Layout& l) {
    std::vector<Layout> out;
    for (ScheduleKind kind : o.schedules) {
      // One pipeline stage: the schedules are the same; keep 1F1B's name.
      if (f.pp == 1 && kind != ScheduleKind::OneFOneB) continue;
      out.push_back(l), out.back().schedule = kind;
    }
    return out;
  });
  layouts = expand(layouts, [&](const Layout& l) {
    if (l.schedule != ScheduleKind::Interleaved) return std::vector<Layout>{l};
    std::vector<Layout> out;
    const int microbatches = o.global_batch_size / (l.micro_batch_size * f.dp);
    if (f.pp < 2 || microbatches % f.pp != 0) return out;
    for (int v = 2; v <= f.max_virtual_stages; ++v) out.push_back(l), out.back().virtual_stages = v;
    return out;
  });
  layouts = expand(layouts, [&](const Layout& l) {
    std::vector<Layout> out;
    for (Recompute rc : o.recompute) {
      // Selective recompute drops attention probabilities: an mlp has none.
      if (rc == Recompute::Selective && model.arch == "mlp") continue;
      out.push_back(l), out.back().recompute = rc;
    }
    return out;
  });
  layouts = expand(layouts, [&](const Layout& l) {
    std::vector<Layout> out;
    for (int zero : o.zero_stages) {
      if (zero > 0 && f.dp == 1) continue;  // ZeRO shards over dp: nothing to shard
      // Local SGD / DiLoCo replicas keep their own parameters and AdamW: stages 2 and 3 do not apply.
      if (zero >= 2 && o.data_parallel_sync != "allreduce") continue;
      out.push_back(l), out.back().zero_stage = zero;
    }
    return out;
  });
  return expand(layouts, [&](const Layout& l) {
    std::vector<Layout> out;
    for (bool sp : f.sequence_parallel) out.push_back(l), out.back().sequence_parallel = sp;
    return out;
  });
}

// Sequence parallelism is decided by tp alone: the choices a tp allows, rejecting the others.
std::vector<bool> sequence_parallel_choices(const ModelConfig& model, const SearchOptions& o, int tp,
                                            std::vector<Rejection>& rejected) {
  std::vector<bool> choices;
  for (bool sp : o.sequence_parallel) {
    if (sp && (tp == 1 || model.arch == "mlp")) continue;  // nothing to shard: not a layout
    if (auto e = sp ? sequence_parallel_error(model, tp) : std::nullopt) {
      rejected.push_back({fmt::format("tp{} sp", tp), *e});
      continue;
    }
    choices.push_back(sp);
  }
  return choices;
}

// Interleaving for a family: the virtual stages that fit the layers, and one rejection line
// per kind of failure (too few layers; micro batches whose microbatch count pp does not divide).
int interleaving(const ModelConfig& model, const SearchOptions& o, const Family& f, std::vector<Rejection>& rejected) {
  const bool try_interleaved =
      std::find(o.schedules.begin(), o.schedules.end(), ScheduleKind::Interleaved) != o.schedules.end();
  if (!try_interleaved || f.pp < 2) return 0;
  const int custom = static_cast<int>(o.custom_layers.size());
  const int max_v = std::min(o.max_virtual_stages, graph_layer_count(model, custom) / f.pp);
  if (max_v < 2 && o.max_virtual_stages >= 2) {
    rejected.push_back({f.name() + " interleaved", *stages_error(model, f.pp, 2, custom)});
  }
  std::vector<int> bad_micro, bad_count;
  for (int b : f.micro_batches) {
    const int microbatches = o.global_batch_size / (b * f.dp);
    if (max_v >= 2 && microbatches % f.pp != 0) {
      bad_micro.push_back(b);
      bad_count.push_back(microbatches);
    }
  }
  if (!bad_micro.empty()) {
    rejected.push_back({fmt::format("{} interleaved mb{}", f.name(), fmt::join(bad_micro, ",")),
                        fmt::format("interleaved needs microbatches divisible by pp {}, not {}", f.pp,
                                    fmt::join(bad_count, ", "))});
  }
  return max_v;
}

// The family (dp, tp, pp) with what its layouts may vary, or nullopt after rejecting it.
std::optional<Family> make_family(const ModelConfig& model, const SearchOptions& o, const std::vector<int>& micros,
                                  int tp, int pp, const std::vector<bool>& sequence_parallel,
                                  std::vector<Rejection>& rejected) {
  Family f;
  f.tp = tp;
  f.pp = pp;
  f.dp = o.world / (tp * pp);
  f.sequence_parallel = sequence_parallel;
  if (auto e = stages_error(model, pp, 1, static_cast<int>(o.custom_layers.size()))) {
    rejected.push_back({fmt::format("tp{} pp{}", tp, pp), *e});
    return std::nullopt;
  }
  for (int b : micros) {
    if (o.global_batch_size % (b * f.dp) == 0) f.micro_batches.push_back(b);
  }
  if (f.micro_batches.empty()) {
    rejected.push_back({f.name(), fmt::format("global batch {} not divisible by dp {} x any micro batch in [{}]",
                                              o.global_batch_size, f.dp, fmt::join(micros, ", "))});
    return std::nullopt;
  }
  f.max_virtual_stages = interleaving(model, o, f, rejected);
  return f;
}

// The micro batch sizes to try, sorted and without repeats.
std::vector<int> micro_batch_candidates(const SearchOptions& o) {
  std::vector<int> micros;
  for (int b : o.micro_batch_sizes.empty() ? std::vector<int>{1, 2, 4, 8} : o.micro_batch_sizes) {
    if (b >= 1 && std::find(micros.begin(), micros.end(), b) == micros.end()) micros.push_back(b);
  }
  std::sort(micros.begin(), micros.end());
  return micros;
}

}  // namespace

SearchResult search_layouts(const ModelConfig& model, int64_t vocab, const CostModel& cost, const SearchOptions& o) {
  TESSERA_REQUIRE(o.world >= 1, "world size {} must be >= 1", o.world);
  TESSERA_REQUIRE(o.global_batch_size >= 1, "global batch size {} must be >= 1", o.global_batch_size);
  for (int zero : o.zero_stages) TESSERA_REQUIRE(0 <= zero && zero <= 3, "ZeRO stage {} must be 0, 1, 2 or 3", zero);
  TESSERA_REQUIRE(o.zero_prefetch >= 0, "zero_prefetch {} must be >= 0", o.zero_prefetch);
  SearchResult r;
  const std::vector<int> micros = micro_batch_candidates(o);
  for (int tp : divisors(o.world)) {
    if (auto e = tp_error(model, tp)) {
      r.rejected.push_back({fmt::format("tp{}", tp), *e});
      continue;
    }
    const std::vector<bool> sps = sequence_parallel_choices(model, o, tp, r.rejected);
    for (int pp : divisors(o.world / tp)) {
      const std::optional<Family> family = make_family(model, o, micros, tp, pp, sps, r.rejected);
      if (!family) continue;
      for (const Layout& layout : family_layouts(model, o, *family)) {
        ++r.evaluated;
        Evaluation ev = evaluate_layout(model, vocab, cost, layout, o);
        if (ev.plan) {
          r.plans.push_back(std::move(*ev.plan));
        } else {
          r.rejected.push_back({layout.label(), ev.rejection, ev.needs_bytes});
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

MemoryOptions layout_memory_options(const Layout& lay, const SearchOptions& o) {
  const int microbatches = o.global_batch_size / (lay.micro_batch_size * lay.dp);
  return {lay.tp,        lay.dp,          lay.pp,          lay.virtual_stages, microbatches,          lay.schedule,
          lay.recompute, lay.zero_stage, o.zero_prefetch, o.bucket_bytes,     o.precision != "fp32",
          o.grad_reduce_dtype == "bf16"};
}

SearchOptions search_options_from_config(const Config& c, int world) {
  SearchOptions o;
  o.world = world;
  o.global_batch_size = c.train.global_batch_size;
  o.bucket_bytes = c.parallel.bucket_mb * (1 << 20);
  o.zero_prefetch = c.parallel.zero_prefetch;
  o.precision = c.train.precision;
  o.grad_reduce_dtype = c.parallel.grad_reduce_dtype;
  o.threads_per_rank = c.train.threads;
  o.data_parallel_sync = c.parallel.data_parallel_sync;
  o.outer = outer_sync_cost_options(c.parallel);
  return o;
}

PartitionPlan plan_config_layout(const Config& c, int64_t vocab, int world, const CostModel& cost,
                                 const std::vector<int>& fixed_partition,
                                 const std::vector<CustomLayerPlacement>& custom_layers) {
  SearchOptions o = search_options_from_config(c, world);
  o.custom_layers = custom_layers;
  o.memory_cap = std::numeric_limits<double>::max();
  Evaluation ev = evaluate_layout(c.model, vocab, cost, config_layout(c, world), o, fixed_partition);
  TESSERA_CHECK(ev.plan.has_value(), "no plan for the config's layout: {}", ev.rejection);
  return std::move(*ev.plan);
}

}  // namespace tessera
