// `tessera config --markdown`: prints the config reference generated from the schema, the
// text docs/configuration.md carries between its "generated" markers.
#pragma once

#include <CLI/CLI.hpp>

namespace tessera {

struct ConfigOptions {
  bool markdown = false;
};

// Registers the `config` subcommand on app, filling `options` when parsed.
CLI::App* add_config_command(CLI::App& app, ConfigOptions& options);

// Prints the reference; 0 on success.
int run_config(const ConfigOptions& options);

}  // namespace tessera
