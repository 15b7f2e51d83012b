// `tessera plan`: the command line, and the run: the config's vocabulary, the machine model
// (--cluster, the calibration cache, or a fresh calibration), the layout search or the config's
// own layout, and the table, the rejections and the best plan.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "core/error.h"
#include "launcher/calibration.h"
#include "launcher/config_loader.h"
#include "launcher/plan_command.h"
#include "partitioner/layout_search.h"
#include "partitioner/plan_report.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/data/dataset.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

// Upper bound of the counting options (--world, --top, ...), as the checkpoint format's for tp.
constexpr int kMaxCount = 1 << 20;

int64_t resolve_vocab(const Config& c, int64_t given) {
  if (given > 0) return given;
  try {
    return vocab_size_of(c.model.vocab, c.data);
  } catch (const InputError& e) {
    throw InputError(fmt::format("{} (model.vocab: chars needs the data file for its size; or give --vocab N)", e.what()));
  }
}

// Parses each name of a list option, naming the option in the error.
template <typename Parse>
auto parse_list(const std::vector<std::string>& names, const char* option, Parse parse) {
  std::vector<decltype(parse(names.front()))> out;
  for (const auto& n : names) {
    try {
      out.push_back(parse(n));
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}: {}", option, e.what()));
    }
  }
  return out;
}

}  // namespace

CLI::App* add_plan_command(CLI::App& app, PlanOptions& o) {
  CLI::App* cmd = app.add_subcommand("plan", "Rank the parallel layouts of a config for a world size and memory cap");
  cmd->add_option("config", o.config_path, "YAML config file (optional with --calibrate)");
  cmd->add_option("--set", o.overrides, "Override a config field: --set train.global_batch_size=48")->take_all();
  // CLI11's PositiveNumber reports its range as "0 to 1.797...e308"; a named range reads better.
  const CLI::Range positive(1, kMaxCount);
  cmd->add_option("--world,-n", o.world, "World size (ranks) to plan for")->check(positive);
  cmd->add_option("--memory-cap", o.memory_cap, "Memory per rank, e.g. 24GiB (default: the cluster's)");
  cmd->add_option("--cluster", o.cluster_path, "Cluster description (configs/clusters/*.yaml); default: this machine's calibration");
  cmd->add_option("--top", o.top, "Rows of the table")->check(positive);
  cmd->add_option("--json", o.json_path, "Write the best plan as JSON here");
  cmd->add_flag("--calibrate", o.calibrate, "Measure this machine (under mpirun -np 2: also MPI) and cache it");
  cmd->add_option("--cache", o.cache_path, "Calibration cache (default ~/.cache/tessera/calibration.json)");
  cmd->add_option("--micro-batch", o.micro_batch_sizes, "Micro batch sizes to try (default 1,2,4,8 and the config's)")
      ->delimiter(',');
  cmd->add_option("--schedules", o.schedules, "Schedules to try: gpipe,1f1b,interleaved")->delimiter(',');
  cmd->add_option("--recompute", o.recompute, "Recompute modes to try: none,selective,full")->delimiter(',');
  cmd->add_option("--zero", o.zero_stages, "ZeRO stages to try: 0,1")->delimiter(',');
  cmd->add_option("--sequence-parallel", o.sequence_parallel, "both | on | off")
      ->check(CLI::IsMember({"both", "on", "off"}));
  cmd->add_option("--max-virtual-stages", o.max_virtual_stages, "Interleaved: try v = 2..this")->check(positive);
  cmd->add_option("--vocab", o.vocab, "Vocabulary size (default: from model.vocab and the data file)");
  cmd->add_flag("--config-layout", o.config_layout,
                "Plan only the config's own layout (what parallel.partition: auto runs): balance, simulate, size");
  return cmd;
}

int run_plan(const PlanOptions& o) {
  const std::string cache = o.cache_path.empty() ? default_calibration_path() : o.cache_path;
  std::optional<ClusterModel> calibrated;
  if (o.calibrate) {
    calibrated = calibrate(cache, true, true);
    if (!calibrated) return 0;  // ranks other than 0
    if (o.config_path.empty()) return 0;
  }
  if (mpi_world_rank() != 0) return 0;  // the calibration needed every rank; the rest is rank 0's
  TESSERA_REQUIRE(!o.config_path.empty(), "tessera plan needs a CONFIG (or --calibrate alone)");
  const Config config = load_config(o.config_path, o.overrides);
  const int64_t vocab = resolve_vocab(config, o.vocab);

  ClusterModel cluster;
  if (!o.cluster_path.empty()) {
    cluster = load_cluster(o.cluster_path);
  } else if (calibrated) {
    cluster = *calibrated;
  } else if (fs::exists(cache)) {
    cluster = load_cluster(cache);
  } else {
    std::cout << fmt::format("no --cluster and no calibration at {}: measuring this machine's compute first "
                             "(MPI link defaults; `mpirun -np 2 tessera plan --calibrate` measures it)\n", cache);
    cluster = *calibrate(cache, false, true);
  }

  SearchOptions so = search_options_from_config(config, o.world);
  so.memory_cap = o.memory_cap.empty() ? 0.0 : parse_byte_size(o.memory_cap, "--memory-cap");
  so.micro_batch_sizes = o.micro_batch_sizes;
  if (so.micro_batch_sizes.empty()) so.micro_batch_sizes = {1, 2, 4, 8, config.train.micro_batch_size};
  if (!o.schedules.empty()) so.schedules = parse_list(o.schedules, "--schedules", parse_schedule);
  if (!o.recompute.empty()) so.recompute = parse_list(o.recompute, "--recompute", parse_recompute);
  if (!o.zero_stages.empty()) so.zero_stages = o.zero_stages;
  if (o.sequence_parallel == "on") so.sequence_parallel = {true};
  if (o.sequence_parallel == "off") so.sequence_parallel = {false};
  so.max_virtual_stages = o.max_virtual_stages;

  const CostModel cost(cluster, so.precision != "fp32");
  if (o.config_layout) {
    // The config's own layout: the rules `mpirun -np WORLD tessera train` applies, with its lines.
    validate_for_world(config, o.world);
    const PartitionPlan plan = plan_config_layout(config, vocab, o.world, cost);
    std::cout << fmt::format("tessera plan: {} on {} ranks of {} ({}), the config's layout\n", o.config_path, o.world,
                             cluster.name, cluster.source);
    std::cout << format_plan_details(plan);
    std::cout << fmt::format("predicted: {} per step, {} tokens/s, {:.1f}% MFU, {} per rank at most\n",
                             format_seconds(plan.step_time_s), format_rate(plan.tokens_per_s), 100.0 * plan.mfu,
                             format_bytes(static_cast<double>(plan.peak_memory())));
    if (!o.json_path.empty()) {
      std::ofstream out(o.json_path);
      TESSERA_REQUIRE(out.good(), "--json: cannot write '{}'", o.json_path);
      out << to_json(plan).dump(2) << "\n";
    }
    return 0;
  }
  const SearchResult result = search_layouts(config.model, vocab, cost, so);
  const double cap = effective_memory_cap(cluster, o.world, so.memory_cap);
  const ModelConfig& m = config.model;
  std::cout << fmt::format("tessera plan: {} on {} ranks of {} ({})\n", o.config_path, o.world, cluster.name, cluster.source);
  std::cout << fmt::format("model: {} {} layers x {} hidden{}, seq {}, vocab {} ({} graph layers); global batch {}; "
                           "memory cap {} per rank\n",
                           m.arch, m.num_layers, m.hidden_size,
                           m.arch == "gpt" ? fmt::format(", {} heads, ffn {}", m.num_attention_heads, ffn_size(m)) : "",
                           m.seq_length, vocab, m.num_layers + 2, so.global_batch_size, format_bytes(cap));
  std::cout << fmt::format("{} layouts simulated: {} fit, {} rejected in all\n\n", result.evaluated, result.plans.size(),
                           result.rejected.size());
  if (!result.plans.empty()) std::cout << format_plan_table(result, o.top) << "\n";
  if (!result.rejected.empty()) std::cout << "rejected:\n" << format_rejections(result) << "\n";
  TESSERA_REQUIRE(!result.plans.empty(), "{}: no layout for world {} is valid and fits {} per rank (see the rejections above)",
                  o.config_path, o.world, format_bytes(cap));
  const PartitionPlan& best = result.plans.front();
  if (o.details) std::cout << "best: " << format_plan_details(best);
  std::cout << fmt::format("run it: mpirun -np {} tessera train {} --set {}\n", o.world, o.config_path,
                           fmt::join(plan_overrides(best), " "));
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    TESSERA_REQUIRE(out.good(), "--json: cannot write '{}'", o.json_path);
    out << to_json(best).dump(2) << "\n";
    std::cout << "plan written to " << o.json_path << "\n";
  }
  return 0;
}

}  // namespace tessera
