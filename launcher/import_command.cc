// `tessera import --hf DIR -o CKPT` (see import_command.h).
#include "launcher/import_command.h"

#include <iostream>

#include "launcher/config_loader.h"
#include "runtime/interop/hf_import.h"

namespace tessera {

CLI::App* add_import_command(CLI::App& app, ImportOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "import", "Write a Hugging Face model directory (GPT2LMHeadModel or LlamaForCausalLM, as save_pretrained "
                "writes it) as a Tessera checkpoint to train from (init.from) under any layout");
  cmd->add_option("--hf", o.hf, "Model directory with config.json and model.safetensors")->required();
  cmd->add_option("-o,--output", o.out, "Checkpoint directory to create (step_0 and latest inside)")->required();
  return cmd;
}

int run_import(const ImportOptions& o) {
  // The checkpoint's config: the defaults with the imported model, token ids as its vocabulary.
  Config config;
  config.model = read_hf_config(o.hf).model;
  config.data.format = "tokens";
  const SaveResult r = import_hf(o.hf, o.out, config_to_yaml(config));
  std::cout << "imported " << o.hf << " (" << config.model.arch << ", " << config.model.num_layers << " layers, vocab "
            << config.model.vocab << ") to " << r.step_dir << "\n";
  return 0;
}

}  // namespace tessera
