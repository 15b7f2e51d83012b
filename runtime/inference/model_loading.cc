// InferenceModel::load: a checkpoint's config (the YAML saved in its manifest, read by the
// launcher's config loader, which is why runtime/inference is built into tessera_launcher),
// vocabulary and global parameters.
#include "launcher/config_loader.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/inference/inference_model.h"

namespace tessera {

InferenceModel InferenceModel::load(const std::string& checkpoint_path) {
  const std::string step_dir = resolve_checkpoint(checkpoint_path);
  CheckpointReader reader(step_dir);
  const Manifest& m = reader.manifest();
  const Config config = parse_config_string(m.config_yaml, step_dir + "/manifest.json config");
  TESSERA_REQUIRE(config.model.arch == "gpt", "{}: model.arch is {}; generation needs a gpt model", step_dir,
                  config.model.arch);
  TESSERA_REQUIRE(!m.vocabulary.is_null(), "{}: the manifest has no vocabulary", step_dir);
  Vocabulary vocabulary = Vocabulary::from_json(m.vocabulary);
  try {
    return InferenceModel(config.model, std::move(vocabulary), read_global_parameters(reader));
  } catch (const InputError& e) {
    throw InputError(step_dir + ": " + e.what());
  }
}

}  // namespace tessera
