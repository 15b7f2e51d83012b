// `tessera generate CKPT --prompt TEXT`: samples text from a trained GPT checkpoint (any
// layout) with the KV-cache inference engine; the text to stdout, timings to stderr.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace tessera {

struct GenerateOptions {
  std::string checkpoint;  // step directory or checkpoint.dir
  std::string prompt = "\n";
  int max_tokens = 200;
  float temperature = 0.8f;
  int top_k = 0;
  uint64_t seed = 1337;
  bool greedy = false;    // same as temperature 0
  bool no_cache = false;  // full forward per token (the baseline for the KV cache)
};

// Registers the `generate` subcommand on app, filling `options` when parsed.
CLI::App* add_generate_command(CLI::App& app, GenerateOptions& options);

// Runs it: 0 on success. InputError for an unreadable or non-GPT checkpoint, or a prompt
// character outside the checkpoint's vocabulary.
int run_generate(const GenerateOptions& options);

}  // namespace tessera
