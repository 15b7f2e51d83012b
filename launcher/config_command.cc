// `tessera config`: the config reference, generated from the validator's schema.
#include "launcher/config_command.h"

#include <iostream>

#include "launcher/config_reference.h"

namespace tessera {

CLI::App* add_config_command(CLI::App& app, ConfigOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "config", "Print the config reference (every key, type, default and rule) as docs/configuration.md has it");
  cmd->add_flag("--markdown", o.markdown, "As markdown tables (the only format)")->required();
  return cmd;
}

int run_config(const ConfigOptions&) {
  std::cout << config::reference_markdown();
  return 0;
}

}  // namespace tessera
