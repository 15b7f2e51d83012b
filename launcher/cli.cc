// The `tessera` command line. Errors found before any work (config, world size, data) are
// reported once by rank 0 and end every rank with exit code 1; errors during training are
// printed by the rank that hit them, with its rank, and end the whole job through MPI_Abort.
#include "launcher/cli.h"

#include <omp.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <spdlog/spdlog.h>
#include <thread>

#include "launcher/config_loader.h"
#include "launcher/rank_discovery.h"
#include "launcher/runtime_support.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/parallel_grid.h"
#include "runtime/data/dataset.h"
#include "runtime/train/trainer.h"

namespace tessera {
namespace {

// Thrown after rank 0 reported a setup error, to end every rank with exit code 1.
struct SetupFailed {};

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  bool print_config = false;
};

// Threads per rank: the configured count, or the cores of this node shared among its ranks.
int resolve_threads(int configured, int local_ranks) {
  if (configured > 0) return configured;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, local_ranks));
}

int ranks_on_this_node(MPI_Comm comm) {
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int size = 1;
  MPI_Comm_size(node, &size);
  MPI_Comm_free(&node);
  return size;
}

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

int run_train(const TrainOptions& opts, MpiEnvironment& env) {
  const int world_size = env.world_size();
  const Config config = setup_phase(env, [&] {
    Config c = load_config(opts.config_path, opts.overrides);
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

  ParallelGroups groups;
  groups.world = world.get();
  groups.tp = TpGroup{&grid.tp(), grid.tp_rank(), grid.tp_size(), config.parallel.sequence_parallel};
  groups.dp = &grid.dp();
  groups.dp_rank = grid.dp_rank();
  groups.dp_size = grid.dp_size();
  groups.pp = &grid.pp();
  groups.pp_rank = grid.pp_rank();
  groups.pp_size = grid.pp_size();
  if (world->rank() == 0) {
    spdlog::info("tessera {}: {} ranks = dp {} x tp {} x pp {}, {} threads per rank, data {} ({} train / {} val tokens, vocab {})",
                 TESSERA_VERSION, world_size, grid.dp_size(), grid.tp_size(), grid.pp_size(),
                 omp_get_max_threads(), config.data.path, data.train.size(), data.val.size(),
                 data.vocab.size());
  }
  Trainer trainer(config, data, groups);
  trainer.fit();
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"Tessera: a model-parallel training runtime. Run under mpirun or srun for several ranks."};
  app.set_version_flag("--version", std::string("tessera ") + TESSERA_VERSION);
  app.require_subcommand(1);
  TrainOptions train;
  CLI::App* train_cmd = app.add_subcommand("train", "Train a model from a YAML config");
  train_cmd->add_option("config", train.config_path, "YAML config file")->required();
  train_cmd->add_option("--set", train.overrides, "Override a config field: --set train.optimizer.lr=3e-4")
      ->take_all();
  train_cmd->add_flag("--print-config", train.print_config, "Print the resolved config and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  spdlog::set_pattern("%v");
  try {
    MpiEnvironment env(&argc, &argv);
    try {
      if (train_cmd->parsed()) return run_train(train, env);
    } catch (const SetupFailed&) {
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "tessera: error on rank " << env.world_rank() << ": " << e.what() << std::endl;
      if (env.world_size() > 1) abort_job(1);
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "tessera: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}

}  // namespace tessera
