// `tessera train`: config, rank discovery, the parallel grid, data, then the trainer. Errors
// found before any work (config, world size, data) are reported once by rank 0; SIGUSR1 or
// SIGTERM asks the trainer to save a checkpoint and stop after the current step.
#include <omp.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <spdlog/spdlog.h>

#include "launcher/commands.h"
#include "launcher/config_loader.h"
#include "launcher/rank_discovery.h"
#include "launcher/runtime_support.h"
#include "launcher/threads.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/parallel_grid.h"
#include "runtime/data/dataset.h"
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
  setup_phase(env, [&] { return discover_rank_with_mpi(); });
  auto world = MpiCommunicator::world(config.parallel.timeout_s);
  omp_set_num_threads(resolve_threads(config.train.threads, ranks_on_this_node(world->mpi_comm())));

  ParallelGrid grid(*world, config.parallel.tensor_model_parallel_size,
                    config.parallel.pipeline_model_parallel_size,
                    resolved_data_parallel_size(config, world_size));
  const Dataset data = setup_phase(env, [&] {
    return load_dataset(config.data, config.model.vocab, config.model.seq_length);
  });
  if (world->rank() == 0) {
    spdlog::info("tessera {}: {} ranks = dp {} x tp {} x pp {}{}, {} threads per rank, data {} ({} train / {} val tokens, vocab {})",
                 TESSERA_VERSION, world_size, grid.dp_size(), grid.tp_size(), grid.pp_size(),
                 config.parallel.sequence_parallel ? " (sequence parallel)" : "", omp_get_max_threads(),
                 config.data.path, data.train.size(), data.val.size(), data.vocab.size());
  }
  std::signal(SIGUSR1, request_stop);
  std::signal(SIGTERM, request_stop);
  TrainerOptions options;
  options.config_yaml = config_to_yaml(config);
  options.stop_requested = &g_stop_requested;
  Trainer trainer(config, data, parallel_groups(grid, config.parallel.sequence_parallel), options);
  trainer.fit();
  return 0;
}

}  // namespace tessera
