// The `tessera` command line: parses the subcommands with CLI11 and turns errors into
// messages and exit codes. Errors during training are printed by the rank that hit them,
// with its rank, and end the whole job through MPI_Abort.
#include "launcher/cli.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <spdlog/spdlog.h>

#include "launcher/commands.h"
#include "launcher/plan_command.h"
#include "runtime/error.h"

namespace tessera {

int run_cli(int argc, char** argv) {
  CLI::App app{"Tessera: a model-parallel training runtime. Run `train` under mpirun or srun for several ranks."};
  app.set_version_flag("--version", std::string("tessera ") + TESSERA_VERSION);
  app.require_subcommand(1);

  TrainOptions train;
  CLI::App* train_cmd = app.add_subcommand("train", "Train a model from a YAML config");
  train_cmd->add_option("config", train.config_path, "YAML config file")->required();
  train_cmd->add_option("--set", train.overrides, "Override a config field: --set train.optimizer.lr=3e-4")
      ->take_all();
  train_cmd->add_flag("--resume", train.resume, "Continue from the newest checkpoint in checkpoint.dir");
  train_cmd->add_flag("--print-config", train.print_config, "Print the resolved config and exit");

  PlanOptions plan;
  CLI::App* plan_cmd = add_plan_command(app, plan);

  std::string ckpt, out;
  bool nanogpt_names = false;
  std::vector<std::string> reshard_overrides;
  CLI::App* inspect_cmd = app.add_subcommand("inspect", "Print a checkpoint's layout, step and tensors");
  inspect_cmd->add_option("checkpoint", ckpt, "Checkpoint step directory, or a checkpoint.dir for its newest")
      ->required();
  CLI::App* export_cmd = app.add_subcommand("export", "Write a checkpoint as one consolidated safetensors file");
  export_cmd->add_option("checkpoint", ckpt, "Checkpoint step directory, or a checkpoint.dir")->required();
  export_cmd->add_option("--safetensors", out, "Output file")->required();
  export_cmd->add_flag("--nanogpt-names", nanogpt_names, "Name tensors as nanoGPT's module (transformer.h.0...)");
  CLI::App* reshard_cmd = app.add_subcommand("reshard", "Rewrite a checkpoint for another parallel layout");
  reshard_cmd->add_option("checkpoint", ckpt, "Checkpoint step directory, or a checkpoint.dir")->required();
  reshard_cmd->add_option("output", out, "Output checkpoint directory")->required();
  reshard_cmd->add_option("--set", reshard_overrides, "The new layout: --set parallel.tensor_model_parallel_size=2")
      ->take_all();

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
      if (plan_cmd->parsed()) return run_plan(plan);
      if (inspect_cmd->parsed()) return run_inspect(ckpt);
      if (export_cmd->parsed()) return run_export(ckpt, out, nanogpt_names);
      if (reshard_cmd->parsed()) return run_reshard(ckpt, out, reshard_overrides);
    } catch (const SetupFailed&) {
      return 1;
    } catch (const std::exception& e) {
      if (env.world_size() == 1) {
        std::cerr << "tessera: error: " << e.what() << std::endl;
        return 1;
      }
      std::cerr << "tessera: error on rank " << env.world_rank() << ": " << e.what() << std::endl;
      abort_job(1);
    }
  } catch (const std::exception& e) {
    std::cerr << "tessera: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}

}  // namespace tessera
