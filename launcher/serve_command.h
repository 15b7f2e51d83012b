// `tessera serve CKPT`: an HTTP model server for a trained GPT checkpoint that speaks OpenAI's
// completions protocol. Handler threads validate and queue requests; one decode loop thread
// runs continuous batching over them. Under `mpirun -np N ... --tp N` the model's heads are
// split over N ranks; rank 0 serves HTTP and drives the others step by step. SIGTERM /
// SIGINT: stop accepting, answer what is queued with 503, finish what is running up to
// --shutdown-timeout, exit 0. See docs/serving.md.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace tessera {

struct ServeOptions {
  std::string checkpoint;          // a step directory, or a checkpoint.dir for its newest
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (printed)
  int max_batch = 8;               // sequences decoded together
  int max_queue = 64;              // requests waiting for a batch slot; more get 503
  int64_t max_prompt_chars = 0;    // 0: the context length - 1
  int threads = 0;                 // OpenMP threads of the decode steps; 0: OpenMP's default
  std::string name;                // the model's name in answers; empty: the checkpoint dir's
  int read_timeout_s = 10;         // a request that stalls this long: 408
  double shutdown_timeout_s = 30;  // running requests get this long to finish after SIGTERM
  int tp = 1;                      // tensor-parallel ranks (the world size under mpirun)
  double comm_timeout_s = 60;      // --tp: how long a rank waits on a collective
};

// Registers the `serve` subcommand on app, filling `options` when parsed.
CLI::App* add_serve_command(CLI::App& app, ServeOptions& options);

// Serves until SIGTERM or SIGINT, then returns 0. Throws InputError for a bad checkpoint,
// option or address.
int run_serve(const ServeOptions& options);

}  // namespace tessera
