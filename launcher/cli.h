// The `tessera` command line (CLI11): train, and later plan, export, prune, generate, inspect.
#pragma once

namespace tessera {

// Parses argv and runs the subcommand; returns the process exit code. The only place that
// turns tessera::Error into an exit code.
int run_cli(int argc, char** argv);

}  // namespace tessera
