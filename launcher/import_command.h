// `tessera import --hf DIR -o CKPT`: a Hugging Face model directory as a Tessera checkpoint.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace tessera {

struct ImportOptions {
  std::string hf;   // the model directory (config.json, model.safetensors)
  std::string out;  // the checkpoint directory to create
};

// Registers the `import` subcommand on app, filling `options` when parsed.
CLI::App* add_import_command(CLI::App& app, ImportOptions& options);

// Writes the checkpoint; 0 on success. Bad input throws InputError before anything is written.
int run_import(const ImportOptions& options);

}  // namespace tessera
