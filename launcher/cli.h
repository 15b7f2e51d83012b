// The `tessera` command line (CLI11): train, plan, prune, serve, generate, config, inspect,
// export and reshard, each parsed here and run by its *_command.cc.
#pragma once

namespace tessera {

// Parses argv and runs the subcommand; returns the process exit code. The only place that
// turns tessera::Error into an exit code.
int run_cli(int argc, char** argv);

}  // namespace tessera
