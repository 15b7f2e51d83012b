// InferenceModel::load: a checkpoint's model section (the manifest's "model"), vocabulary and
// global parameters.
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/inference/inference_model.h"

namespace tessera {

InferenceModel InferenceModel::load(const std::string& checkpoint_path, const TpGroup& tp) {
  const std::string step_dir = resolve_checkpoint(checkpoint_path);
  CheckpointReader reader(step_dir);
  const Manifest& m = reader.manifest();
  TESSERA_REQUIRE(m.model.has_value(), "{}: the manifest has no \"model\" section, so the model's shape is unknown",
                  step_dir);
  TESSERA_REQUIRE(m.model->arch == "gpt", "{}: model.arch is {}; generation needs a gpt model", step_dir,
                  m.model->arch);
  TESSERA_REQUIRE(!m.vocabulary.is_null(), "{}: the manifest has no vocabulary", step_dir);
  Vocabulary vocabulary = Vocabulary::from_json(m.vocabulary);
  try {
    return InferenceModel(*m.model, std::move(vocabulary), read_global_parameters(reader), tp);
  } catch (const InputError& e) {
    throw InputError(step_dir + ": " + e.what());
  }
}

}  // namespace tessera
