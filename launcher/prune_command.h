// `tessera prune`: compresses a checkpoint. Unstructured magnitude pruning (--sparsity, or an
// N:M --pattern) zeroes weights of the linear layers and stores their masks, so a fine-tune
// started from it (--set init.from=OUT) keeps them at zero; structured pruning (--structured)
// removes whole MLP neurons and attention heads and writes a smaller dense model with its
// config. The output loads under any parallel layout.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace tessera {

struct PruneOptions {
  std::string checkpoint;              // a step directory or a checkpoint.dir
  std::string out;                     // the output checkpoint.dir
  double sparsity = std::numeric_limits<double>::quiet_NaN();  // NaN: not given
  std::string scope = "global";        // global | layer
  std::string pattern;                 // "2:4"; empty: none
  bool include_embeddings = false;
  std::string structured;              // "neurons=0.5,heads=0.25"; empty: none
  std::string importance = "weight";   // weight | activation
  std::vector<std::string> overrides;  // --set key=value on the checkpoint's config
};

// Registers the `prune` subcommand on app, filling `options` when parsed.
CLI::App* add_prune_command(CLI::App& app, PruneOptions& options);

// Runs it in one process: 0 on success; InputError (one line) on bad arguments.
int run_prune(const PruneOptions& options);

}  // namespace tessera
