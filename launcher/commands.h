// The subcommands of the `tessera` CLI. Each returns the exit code or throws tessera::Error;
// run_cli (cli.cc) turns what escapes into messages and exit codes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/comm/mpi_environment.h"
#include "core/error.h"

namespace tessera {

// Thrown after rank 0 reported a setup error, to end every rank with exit code 1.
struct SetupFailed {};

// A command line the parser accepts but a command cannot run (options that must go together):
// run_cli reports it as a usage error, with exit code 2.
class UsageError : public InputError {
 public:
  using InputError::InputError;
};

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  bool print_config = false;
  bool resume = false;  // same as --set checkpoint.resume=auto
  std::string cluster_path;       // machine model for the banner's prediction; empty: the calibration cache
  std::string progress = "auto";  // auto | live | plain (launcher/progress.h)
};
// `tessera train`: collective over the MPI world.
int run_train(const TrainOptions& options, MpiEnvironment& env);

// `tessera inspect CKPT`: the manifest, layout, step and tensors of a checkpoint (a step
// directory, or a checkpoint directory for its newest).
int run_inspect(const std::string& path);

struct ExportCommandOptions {
  std::string checkpoint;
  std::string safetensors;  // exactly one of safetensors, onnx and hf is set
  std::string onnx;
  bool nanogpt_names = false;  // safetensors only
  int64_t external_data_threshold = 0;  // onnx only; 0 = OnnxExportOptions' default (2 GiB)
  std::string hf;  // a Hugging Face model directory (runtime/interop/hf_export.h)
  std::string dtype = "fp32";  // safetensors only: fp32 | bf16
};
// `tessera export CKPT --safetensors OUT`: one consolidated safetensors file of global,
// unpadded tensors that PyTorch loads; nanogpt_names prefixes the names as nanoGPT's module.
// `tessera export CKPT --onnx OUT`: the model's forward as an ONNX model (docs/onnx.md).
// `tessera export CKPT --hf DIR`: a directory transformers' from_pretrained loads (docs/huggingface.md).
// Options that do not go together throw UsageError.
int run_export(const ExportCommandOptions& options);

// `tessera reshard CKPT OUT --set parallel.…`: rewrites a checkpoint for another layout
// offline (loading already works under any layout; this makes the files match it).
int run_reshard(const std::string& path, const std::string& out, const std::vector<std::string>& overrides);

}  // namespace tessera
