// `tessera train`: config, rank discovery, the parallel grid, data, the start-up banner, then
// the trainer with the progress display. Errors found before any work (config, world size,
// data, machine model) are reported once by rank 0; SIGUSR1 or SIGTERM asks the trainer to
// save a checkpoint and stop after the current step.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <spdlog/spdlog.h>

#include "launcher/banner.h"
#include "launcher/commands.h"
#include "launcher/config_loader.h"
#include "launcher/progress.h"
#include "launcher/rank_discovery.h"
#include "launcher/runtime_support.h"
#include "launcher/text_codec.h"
#include "launcher/threads.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/comm/agreement.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/parallel_grid.h"
#include "runtime/compute/cuda_compute.h"
#include "runtime/data/dataset.h"
#include "runtime/device/device_choice.h"
#include "runtime/train/trainer.h"

namespace tessera {
namespace {

// Set by the signal handler, read by the trainer between steps. A signal handler can only
// reach process-wide state; this flag is the one such piece.
std::atomic<bool> g_stop_requested{false};

extern "C" void request_stop(int) { g_stop_requested.store(true); }

// Runs a setup phase whose errors are the same on every rank (they depend only on the
// config and files every rank reads): rank 0 reports, every rank stops.
template <typename F>
auto setup_phase(const MpiEnvironment& env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const InputError& e) {
    if (env.world_rank() == 0) std::cerr << "tessera: error: " << e.what() << std::endl;
    throw SetupFailed{};
  }
}

// "auto: step_40 in runs/x": what checkpoint.resume will load (read-only: the trainer decides).
std::string resume_state(const CheckpointConfig& c) {
  if (c.resume != "auto") return "none";
  std::vector<std::string> warnings;
  const auto found = find_latest_checkpoint(c.dir, &warnings);
  return found ? fmt::format("auto: {}", *found) : fmt::format("auto: no checkpoint in {} yet, from step 0", c.dir);
}

// The banner's facts on rank 0: the partition to run, with the prediction when a machine model
// is known.
RunFacts run_facts(const Config& config, const Dataset& data, const ParallelGrid& grid,
                   const std::vector<int>& flop_partition, const std::optional<ClusterModel>& cluster,
                   const std::string& no_cluster) {
  RunFacts f;
  f.world = grid.world_size();
  f.dp = grid.dp_size();
  f.threads = omp_get_max_threads();
  f.train_tokens = static_cast<int64_t>(data.train.size());
  f.val_tokens = static_cast<int64_t>(data.val.size());
  f.vocab = data.vocab.size();
  f.resume = resume_state(config.checkpoint);
  f.prediction_source = no_cluster;
  predict_run(f, config, cluster, flop_partition);
  return f;
}

// Rank 0's partition on every rank: nodes may hold different calibration caches, and every
// pipeline rank must cut the layers at the same places.
std::vector<int> agreed_partition(Communicator& world, const std::vector<int>& partition) {
  Tensor t = Tensor::empty({static_cast<int64_t>(partition.size())}, DType::I32);
  std::copy(partition.begin(), partition.end(), t.i32());
  world.broadcast(t, 0);
  return {t.i32(), t.i32() + partition.size()};
}

}  // namespace

int run_train(const TrainOptions& opts, MpiEnvironment& env) {
  const int world_size = env.world_size();
  const Config config = setup_phase(env, [&] {
    std::vector<std::string> overrides = opts.overrides;
    if (opts.resume) overrides.push_back("checkpoint.resume=auto");
    Config c = load_config(opts.config_path, overrides);
    check_runtime_support(c);
    validate_for_world(c, world_size);
    return c;
  });
  spdlog::set_level(spdlog::level::from_str(config.log.level));
  if (opts.print_config) {
    if (env.world_rank() == 0) std::cout << config_to_yaml(config);
    return 0;
  }
  const RankInfo rank = setup_phase(env, [&] { return discover_rank_with_mpi(); });
  std::string no_cluster;
  const std::optional<ClusterModel> cluster =
      setup_phase(env, [&] { return prediction_cluster(opts.cluster_path, no_cluster); });
  auto world = MpiCommunicator::world(config.parallel.timeout_s);
  const int local_ranks = ranks_on_this_node(world->mpi_comm());
  omp_set_num_threads(resolve_threads(config.train.threads, local_ranks));
  // Before any work: every rank checks its own GPU, and all stop together with the first
  // refusal (ranks on other nodes may see other devices).
  if (config.train.device == "cuda") {
    run_agreed(world.get(), [&] {
      choose_cuda_device(
          {cuda_built(), cuda_devices_visible(), rank.rank, rank.local_rank, local_ranks, nccl_version_code()});
      TESSERA_REQUIRE(false, "train.device = cuda: the trainer does not place its state on the device yet "
                             "(issue 16, part 5)");
    });
  }

  ParallelGrid grid(*world, config.parallel.tensor_model_parallel_size,
                    config.parallel.pipeline_model_parallel_size,
                    resolved_data_parallel_size(config, world_size));
  const Dataset data = setup_phase(env, [&] {
    check_data_tokenizer(config);
    return load_dataset(config.data, config.model.vocab, config.model.seq_length);
  });
  const bool logging = world->rank() == 0;
  const char* term = std::getenv("TERM");
  const bool live = use_live_progress(parse_progress_mode(opts.progress), isatty(fileno(stdout)) != 0, rank.source,
                                      term != nullptr ? term : "");
  const LayerGraph graph = build_layer_graph(config.model, data.vocab.size(), config.train.micro_batch_size);
  // Every rank balances by FLOPs first, so a split that cannot be made fails on all of them.
  const std::vector<int> flop_partition = setup_phase(env, [&] { return stage_partition(config.parallel, graph); });
  std::vector<int> partition = flop_partition;
  std::optional<StepTimeCheck> step_check;
  if (logging) {
    const RunFacts facts = run_facts(config, data, grid, flop_partition, cluster, no_cluster);
    partition = facts.partition;
    if (facts.predicted) step_check.emplace(facts.predicted->step_time_s, facts.prediction_source);
    std::string banner = format_banner(config, graph, facts);
    banner.pop_back();  // spdlog ends the line
    spdlog::info("{}", banner);
    // Every later line first clears the live progress line it would otherwise be appended to.
    if (live) spdlog::set_pattern("\r\033[K%v");
  }
  std::signal(SIGUSR1, request_stop);
  std::signal(SIGTERM, request_stop);

  ProgressDisplay progress(config.train.max_steps, live, stdout);
  TrainerOptions options;
  options.config_yaml = config_to_yaml(config);
  options.stop_requested = &g_stop_requested;
  if (logging) {
    options.callbacks.on_step = [&](const StepResult& r) {
      progress.step_done(r.step, r.loss, r.step_ms);
      if (!step_check) return;
      if (const auto warning = step_check->add(r.step, r.step_ms)) spdlog::warn("{}", *warning);
    };
    options.callbacks.on_log = [&](const StepMetrics& m) { spdlog::info("{}", progress.log_line(m)); };
  }
  // The trainer runs the partition the banner shows; checkpoints keep the config as written.
  Config run_config = config;
  run_config.parallel.partition = agreed_partition(*world, partition);
  Trainer trainer(run_config, data, parallel_groups(grid, config.parallel.sequence_parallel), options);
  trainer.fit();
  return 0;
}

}  // namespace tessera
