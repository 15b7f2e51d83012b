// Global weights in, pruned checkpoint out.
#include "runtime/compression/pruned_checkpoint.h"

#include <filesystem>

namespace tessera {

GlobalWeights read_global_weights(const std::string& step_dir) {
  CheckpointReader reader(step_dir);
  GlobalWeights w;
  w.manifest = reader.manifest();
  for (const TensorEntry& t : w.manifest.tensors) {
    Tensor g = reader.global(t, "param");
    if (t.rows >= 0) {
      Shape real = t.global_shape;
      real[0] = t.rows;
      g = resize_padded_rows(g, real, t.rows);
    }
    w.tensors.emplace(t.name, std::move(g));
  }
  return w;
}

SaveResult write_pruned_checkpoint(const std::string& out_dir, const Manifest& like,
                                   const std::map<std::string, Tensor>& tensors,
                                   const std::map<std::string, Tensor>& masks, const std::string& config_yaml,
                                   const std::optional<ModelConfig>& model) {
  namespace fs = std::filesystem;
  TESSERA_REQUIRE(like.path.empty() || fs::weakly_canonical(out_dir) !=
                                           fs::weakly_canonical(fs::path(like.path).parent_path().parent_path()),
                  "prune: the output directory {} must differ from the checkpoint's own", out_dir);
  std::vector<Parameter> params(like.tensors.size());
  CheckpointState state;
  state.step = like.step;
  state.optimizer_steps = 0;
  state.model = model;
  for (size_t i = 0; i < like.tensors.size(); ++i) {
    const TensorEntry& t = like.tensors[i];
    const auto it = tensors.find(t.name);
    TESSERA_CHECK(it != tensors.end(), "no pruned tensor for {}", t.name);
    Parameter& p = params[i];
    p.name = t.name;
    p.value = it->second;
    p.global_shape = p.value.shape();
    p.shard = t.shard;
    const auto m = masks.find(t.name);
    if (m != masks.end()) p.mask = m->second;
    // One process writes everything: the vocabulary padded to a multiple of tp = 1 is unpadded.
    if (t.rows >= 0) state.padded_rows[t.name] = p.global_shape[0];
    state.params.push_back(&p);
  }
  return save_checkpoint(out_dir, state, CheckpointLayout{}, nullptr, config_yaml, like.vocabulary, 0);
}

}  // namespace tessera
