// The `tessera` command line: parses the subcommands with CLI11 and turns errors into
// messages and exit codes. Errors during training are printed by the rank that hit them,
// with its rank, and end the whole job through MPI_Abort; those the ranks agreed on (a
// damaged checkpoint at resume) are printed once, and every rank exits with code 1.
#include "launcher/cli.h"

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iostream>
#include <limits>
#include <spdlog/spdlog.h>

#include "launcher/commands.h"
#include "launcher/config_command.h"
#include "launcher/generate_command.h"
#include "launcher/import_command.h"
#include "launcher/tokenize_command.h"
#include "launcher/plan_command.h"
#include "launcher/prune_command.h"
#include "launcher/serve_command.h"
#include "runtime/comm/agreement.h"
#include "core/error.h"

namespace tessera {
namespace {

CLI::App* add_train_command(CLI::App& app, TrainOptions& train) {
  CLI::App* train_cmd = app.add_subcommand("train", "Train a model from a YAML config");
  train_cmd->add_option("config", train.config_path, "YAML config file")->required();
  train_cmd->add_option("--set", train.overrides, "Override a config field: --set train.optimizer.lr=3e-4")
      ->take_all();
  train_cmd->add_flag("--resume", train.resume, "Continue from the newest checkpoint in checkpoint.dir");
  train_cmd->add_flag("--print-config", train.print_config, "Print the resolved config and exit");
  train_cmd->add_option("--cluster", train.cluster_path,
                        "Machine model for the predicted step time and memory (default: `tessera plan --calibrate`'s cache)");
  train_cmd->add_option("--progress", train.progress, "live: redraw a progress line; plain: step lines only; "
                        "auto: live when stdout is a terminal and not under mpirun/srun")
      ->check(CLI::IsMember({"auto", "live", "plain"}));
  return train_cmd;
}

// inspect, export and reshard: the commands that read a checkpoint in one process.
struct CheckpointCommands {
  std::string path, out;
  std::vector<std::string> reshard_overrides;
  ExportCommandOptions export_options;
  CLI::App* inspect = nullptr;
  CLI::App* export_cmd = nullptr;
  CLI::App* reshard = nullptr;
};

void add_checkpoint_commands(CLI::App& app, CheckpointCommands& c) {
  c.inspect = app.add_subcommand("inspect", "Print a checkpoint's layout, step and tensors");
  c.inspect->add_option("checkpoint", c.path, "Checkpoint step directory, or a checkpoint.dir for its newest")
      ->required();
  c.export_cmd = app.add_subcommand(
      "export", "Write a checkpoint as one consolidated safetensors file (--safetensors), as an ONNX model "
                "of the forward pass, tokens -> logits, that onnxruntime runs (--onnx), or as a Hugging Face model "
                "directory (--hf); give exactly one");
  c.export_cmd->add_option("checkpoint", c.export_options.checkpoint, "Checkpoint step directory, or a checkpoint.dir")
      ->required();
  c.export_cmd->add_option("--safetensors", c.export_options.safetensors, "Output safetensors file");
  c.export_cmd->add_option("--onnx", c.export_options.onnx,
                           "Output ONNX file (opset 17; input `tokens` int64 [batch, seq], output `logits`)");
  c.export_cmd->add_option("--dtype", c.export_options.dtype,
                           "--safetensors only: fp32 (the masters, default) or bf16 (half the bytes)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  c.export_cmd->add_option("--hf", c.export_options.hf,
                           "Output directory for transformers' from_pretrained: config.json, model.safetensors, "
                           "generation_config.json (gpt -> GPT2LMHeadModel, llama -> LlamaForCausalLM)");
  c.export_cmd->add_flag("--nanogpt-names", c.export_options.nanogpt_names,
                         "Name tensors as nanoGPT's module (transformer.h.0...); --safetensors only");
  c.export_cmd->add_option("--external-data-threshold", c.export_options.external_data_threshold,
                           "--onnx only: above this many bytes the weights go to <OUT>.data (ONNX external data); "
                           "default 2147483647, protobuf's limit")
      ->check(CLI::Range(int64_t{1}, int64_t{std::numeric_limits<int32_t>::max()}));  // protobuf's limit
  c.reshard = app.add_subcommand("reshard", "Rewrite a checkpoint for another parallel layout");
  c.reshard->add_option("checkpoint", c.path, "Checkpoint step directory, or a checkpoint.dir")->required();
  c.reshard->add_option("output", c.out, "Output checkpoint directory")->required();
  c.reshard->add_option("--set", c.reshard_overrides, "The new layout: --set parallel.tensor_model_parallel_size=2")
      ->take_all();
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"Tessera: a model-parallel training runtime. Run `train` under mpirun or srun for several ranks."};
  app.set_version_flag("--version", std::string("tessera ") + TESSERA_VERSION);
  app.require_subcommand(1);

  TrainOptions train;
  CLI::App* train_cmd = add_train_command(app, train);
  PlanOptions plan;
  CLI::App* plan_cmd = add_plan_command(app, plan);
  PruneOptions prune;
  CLI::App* prune_cmd = add_prune_command(app, prune);
  ServeOptions serve;
  CLI::App* serve_cmd = add_serve_command(app, serve);
  GenerateOptions generate;
  CLI::App* generate_cmd = add_generate_command(app, generate);
  ConfigOptions config_options;
  CLI::App* config_cmd = add_config_command(app, config_options);

  CheckpointCommands checkpoint;
  add_checkpoint_commands(app, checkpoint);
  ImportOptions import_options;
  CLI::App* import_cmd = add_import_command(app, import_options);
  TokenizeOptions tokenize_options;
  CLI::App* tokenize_cmd = add_tokenize_command(app, tokenize_options);

  // A usage mistake is one line and exit code 2, the Unix convention for a bad command line.
  const auto usage_error = [&](const char* what) {
    const auto used = app.get_subcommands();
    std::cerr << "tessera: error: " << what << " (see tessera " << (used.empty() ? "" : used.front()->get_name() + " ")
              << "--help)" << std::endl;
    return 2;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive here too, with exit code 0, and CLI11 prints them.
    if (e.get_exit_code() == 0) return app.exit(e);
    return usage_error(e.what());
  }

  spdlog::set_pattern("%v");
  try {
    MpiEnvironment env(&argc, &argv);
    try {
      if (train_cmd->parsed()) return run_train(train, env);
      if (plan_cmd->parsed()) return run_plan(plan);
      if (prune_cmd->parsed()) return run_prune(prune);
      if (serve_cmd->parsed()) return run_serve(serve);
      if (generate_cmd->parsed()) return run_generate(generate);
      if (config_cmd->parsed()) return run_config(config_options);
      if (checkpoint.inspect->parsed()) return run_inspect(checkpoint.path);
      if (checkpoint.export_cmd->parsed()) return run_export(checkpoint.export_options);
      if (checkpoint.reshard->parsed()) return run_reshard(checkpoint.path, checkpoint.out, checkpoint.reshard_overrides);
      if (import_cmd->parsed()) return run_import(import_options);
      if (tokenize_cmd->parsed()) return run_tokenize(tokenize_options);
    } catch (const SetupFailed&) {
      return 1;
    } catch (const UsageError& e) {
      return usage_error(e.what());
    } catch (const AgreedError& e) {
      // Every rank holds the same error and exits: one line for the job, no abort.
      if (env.world_rank() == 0) std::cerr << "tessera: error: " << e.what() << std::endl;
      return 1;
    } catch (const std::exception& e) {
      if (env.world_size() == 1) {
        std::cerr << "tessera: error: " << e.what() << std::endl;
        return 1;
      }
      // One write: std::cerr is unbuffered, and pieces written apart interleave with the other
      // ranks' lines and with mpirun's abort notice.
      std::cerr << fmt::format("tessera: error on rank {}: {}\n", env.world_rank(), e.what()) << std::flush;
      abort_job(1);
    }
  } catch (const std::exception& e) {
    std::cerr << "tessera: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}

}  // namespace tessera
