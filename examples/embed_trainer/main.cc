// embed_trainer: a research trainer that embeds Tessera as a library through
// <tessera/tessera.h>. It builds a small GPT whose layer graph holds a user-defined layer
// (ScaleLayer, between the two transformer blocks), feeds the Trainer its own DataSource
// (SyntheticTokens), and lets the Trainer run the loop under any (dp, tp, pp) layout of the
// MPI world, watching it through callbacks.
//
//   mpirun -np 2 embed_trainer [--steps N] [--lr X] [--seed S] [--tp T] [--pp P]
//                              [--set key=value]... [--config FILE] [--checkpoint DIR]
//                              [--stop-after N]
//
// --config FILE loads a YAML config (as `tessera train` does) instead of the one built in
// code; --tp/--pp/--steps/--lr/--seed and --set (any dotted key, as `tessera train --set`:
// parallel.zero_stage=1) then override it. dp is the world size / (tp * pp). --checkpoint DIR
// is checkpoint.dir (a run with one resumes from it); --stop-after N stops after step N from
// the on_step callback, saving a checkpoint there, as a research loop's early stop would.
// Rank 0 prints "step 3/30 | loss 2.9876 | lr ... | gnorm ..." per step, "eval ..." per
// evaluation and at the end "losses: ..." (every step's loss) and the learned scale.
#include <atomic>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <tessera/tessera.h>

#include "scale_layer.h"
#include "synthetic_tokens.h"

namespace {

constexpr const char* kUsage =
    "usage: embed_trainer [--steps N] [--lr X] [--seed S] [--tp T] [--pp P] [--set key=value]... [--config FILE] "
    "[--checkpoint DIR] [--stop-after N]";

struct Options {
  std::string config_file;
  std::vector<std::string> overrides;  // dotted keys, as `tessera train --set`
  int64_t stop_after = 0;              // 0: train to train.max_steps
};

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    TESSERA_REQUIRE(i + 1 < argc, "{}: missing value ({})", arg, kUsage);
    const std::string value = argv[++i];
    if (arg == "--steps") {
      o.overrides.push_back("train.max_steps=" + value);
    } else if (arg == "--lr") {
      o.overrides.push_back("train.optimizer.lr=" + value);
    } else if (arg == "--seed") {
      o.overrides.push_back("train.seed=" + value);
    } else if (arg == "--tp") {
      o.overrides.push_back("parallel.tensor_model_parallel_size=" + value);
    } else if (arg == "--pp") {
      o.overrides.push_back("parallel.pipeline_model_parallel_size=" + value);
    } else if (arg == "--set") {
      o.overrides.push_back(value);
    } else if (arg == "--config") {
      o.config_file = value;
    } else if (arg == "--checkpoint") {
      o.overrides.push_back("checkpoint.dir=" + value);
      o.overrides.push_back("checkpoint.resume=auto");
    } else if (arg == "--stop-after") {
      o.stop_after = std::stoll(value);
    } else {
      TESSERA_REQUIRE(false, "unknown option {} ({})", arg, kUsage);
    }
  }
  return o;
}

// The config built in code: the same fields as the YAML files. Defaults that the YAML loader
// resolves (ffn_hidden_size 0 -> 4 * hidden_size) are set explicitly.
tessera::Config config_in_code() {
  tessera::Config c;
  c.source = "embed_trainer";
  c.model.arch = "gpt";
  c.model.num_layers = 2;
  c.model.hidden_size = 32;
  c.model.num_attention_heads = 2;
  c.model.ffn_hidden_size = 128;
  c.model.seq_length = 16;
  c.model.vocab = "24";     // token ids 0..23 (the DataSource's vocabulary sizes the model)
  c.data.format = "tokens";  // integer vocabularies go with token data; the path is not read
  c.train.micro_batch_size = 4;
  c.train.global_batch_size = 16;
  c.train.max_steps = 30;
  c.train.seed = 1234;
  c.train.eval_interval = 10;
  c.train.eval_iters = 2;
  c.train.peak_tflops = 0.1;  // for the MFU column only; skips measuring the GEMM roof
  c.train.optimizer.lr = 1e-2;
  c.train.optimizer.min_lr = 1e-3;
  c.train.optimizer.warmup_steps = 3;
  c.log.interval = 1000;  // the callbacks print every step instead
  return c;
}

// The overrides applied to a config built in code: through the YAML round trip, so they are
// parsed and checked exactly as `--set` on a file.
tessera::Config with_overrides(const tessera::Config& c, const std::vector<std::string>& overrides) {
  return tessera::parse_config_string(tessera::config_to_yaml(c), c.source, overrides);
}

int run(const Options& opt, tessera::MpiEnvironment& env) {
  tessera::Config config = opt.config_file.empty() ? with_overrides(config_in_code(), opt.overrides)
                                                   : tessera::load_config(opt.config_file, opt.overrides);
  // Every rule a YAML file is checked against, plus the ones that need the world size.
  tessera::validate_for_world(config, env.world_size());

  // The runtime's bring-up, as `tessera train` and Python use it: rank discovery, a duplicate
  // of MPI_COMM_WORLD (every collective gives up after parallel.timeout_s with a tessera::Error
  // naming the operation and the missing peer), threads per rank, the parallel grid, and the
  // stage partition (decided on rank 0 with this machine's calibration, as the CLI decides it).
  SyntheticTokens data(24, config.train.seed);
  tessera::LayerRegistry layers;
  register_scale_layer(layers);
  std::atomic<bool> stop{false};
  tessera::SessionOptions session_options;
  session_options.data = &data;
  session_options.trainer.stop_requested = &stop;
  session_options.trainer.config_yaml = tessera::config_to_yaml(config);
  session_options.trainer.custom_layers = {scale_layer_after("h.0", "scale", config.model.hidden_size)};
  session_options.trainer.layer_registry = &layers;
  tessera::use_device_runtime(config, session_options);  // --set train.device=cuda trains on the GPU
  tessera::TrainingSession session(config, env, std::move(session_options));
  const int rank = session.world().rank();

  std::vector<double> losses;
  tessera::TrainerCallbacks callbacks;
  callbacks.on_step = [&](const tessera::StepResult& r) {
    losses.push_back(r.loss);
    if (r.step == opt.stop_after) stop = true;  // fit() saves (with a checkpoint.dir) and returns
    if (rank == 0) {
      std::printf("step %lld/%d | loss %.4f | lr %.2e | gnorm %.3f | %.0f ms\n", static_cast<long long>(r.step),
                  config.train.max_steps, r.loss, r.lr, r.grad_norm, r.step_ms);
      std::fflush(stdout);
    }
  };
  callbacks.on_eval = [&](int64_t step, double val_loss) {
    if (rank == 0) std::printf("eval step %lld | val loss %.4f\n", static_cast<long long>(step), val_loss);
  };
  callbacks.on_checkpoint = [&](int64_t step, const std::string& dir) {
    if (rank == 0) std::printf("checkpoint step %lld | %s\n", static_cast<long long>(step), dir.c_str());
  };
  // The trainer's own messages and its step line every log.interval, as `tessera train`.
  tessera::log_with_spdlog(callbacks, rank == 0);

  tessera::Trainer& trainer = session.start(std::move(callbacks));
  if (rank == 0) {
    const tessera::ParallelGrid& grid = session.grid();
    const tessera::PartitionChoice& partition = session.partition();
    std::string names;
    for (const tessera::LayerSpec& l : trainer.graph().layers) names += (names.empty() ? "" : " ") + l.name;
    std::printf("embed_trainer: tessera %s | dp %d x tp %d x pp %d | layers %s | %.3fM parameters | stages [%s]%s\n",
                TESSERA_VERSION, grid.dp_size(), grid.tp_size(), grid.pp_size(), names.c_str(),
                trainer.graph().total_params() / 1e6, fmt::format("{}", fmt::join(partition.partition, ", ")).c_str(),
                partition.source.empty() ? "" : (" (auto, balanced by " + partition.source + ")").c_str());
  }
  trainer.fit();

  // The scale lives on one pipeline stage; the Max over the world brings it to rank 0.
  const tessera::Parameter* scale = nullptr;
  for (const auto& chunk : trainer.chunks()) {
    if (const tessera::Parameter* p = chunk->find("scale.scale")) scale = p;
  }
  tessera::Tensor s = tessera::Tensor::full({1}, scale ? scale->value.f32()[0] : -std::numeric_limits<float>::max());
  session.world().all_reduce(s, tessera::ReduceOp::Max);
  if (rank == 0) {
    std::printf("losses:");
    for (double l : losses) std::printf(" %.6f", l);
    std::printf("\nembed_trainer: done, scale %.4f\n", s.f32()[0]);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Tessera reports every failure as a tessera::Error (InputError for bad input) and never
  // exits; the host program decides. Here, as in the `tessera` CLI: the failing rank prints
  // and ends the whole job, so that the other ranks do not wait for it.
  try {
    tessera::MpiEnvironment env(&argc, &argv);
    try {
      return run(parse_args(argc, argv), env);
    } catch (const tessera::InputError& e) {
      // Bad input is the same on every rank: rank 0 reports it, every rank exits with 1.
      if (env.world_rank() == 0) std::cerr << "embed_trainer: error: " << e.what() << std::endl;
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "embed_trainer: error on rank " << env.world_rank() << ": " << e.what() << std::endl;
      if (env.world_size() > 1) tessera::abort_job(1);
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "embed_trainer: error: " << e.what() << std::endl;
    return 1;
  }
}
