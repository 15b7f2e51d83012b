// Import of a Hugging Face model directory as a Tessera checkpoint (see hf_import.h).
#include "runtime/interop/hf_import.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "partitioner/layer_graph.h"
#include "runtime/interop/hf_names.h"
#include "runtime/io/safetensors.h"
#include "runtime/model/model.h"

namespace tessera {
namespace fs = std::filesystem;

namespace {

nlohmann::json read_config_json(const std::string& path) {
  std::ifstream in(path);
  TESSERA_REQUIRE(in.good(), "{}: cannot open (a Hugging Face model directory has config.json)", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    TESSERA_REQUIRE(false, "{}: not valid JSON: {}", path, e.what());
  }
  return {};
}

// BF16 is the top half of an F32: widening is exact.
Tensor as_f32(const Tensor& t, const std::string& where, const std::string& name) {
  if (t.dtype() == DType::F32) return t;
  TESSERA_REQUIRE(t.dtype() == DType::BF16, "{}: tensor {} is {}; F32 and BF16 weights can be imported", where, name,
                  dtype_name(t.dtype()));
  Tensor out = Tensor::empty(t.shape());
  const uint16_t* in = t.data<uint16_t>();
  float* o = out.f32();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint32_t bits = static_cast<uint32_t>(in[i]) << 16;
    std::memcpy(&o[i], &bits, sizeof(float));
  }
  return out;
}

}  // namespace

HfModel read_hf_config(const std::string& hf_dir) {
  const std::string path = (fs::path(hf_dir) / "config.json").string();
  return model_from_hf_config(read_config_json(path), path);
}

SaveResult import_hf(const std::string& hf_dir, const std::string& out_dir, const std::string& config_yaml) {
  const std::string config_path = (fs::path(hf_dir) / "config.json").string();
  const nlohmann::json config = read_config_json(config_path);
  const HfModel h = model_from_hf_config(config, config_path);
  const std::string weights_path = (fs::path(hf_dir) / "model.safetensors").string();
  TESSERA_REQUIRE(fs::exists(weights_path), "{}: missing (sharded checkpoints, model-0000N-of-M, are not read)",
                  weights_path);
  SafetensorsFile weights = read_safetensors(weights_path);
  check_hf_tensors(config, weights.tensors, weights_path);

  // The model at one rank's layout gives every parameter its name, shape and shard spec.
  const ModelConfig& m = h.model;
  const LayerGraph graph = build_layer_graph(m, h.vocab_size, 1);
  Model model(m, graph, TpGroup::single(), 0);
  for (Parameter* p : model.parameters()) {
    const auto hf = hf_name(m, p->name);
    TESSERA_CHECK(hf.has_value(), "no Hugging Face name for {}", p->name);
    const Tensor t = as_f32(weights.tensors.at(hf->name), weights_path, hf->name);
    p->value.copy_from(hf->transposed ? transpose_2d(t) : t);
  }
  CheckpointState state;
  state.step = 0;
  state.optimizer_steps = 0;
  state.params = model.parameters();
  state.padded_rows = vocab_padded_rows(m, graph);
  state.model = m;
  const CheckpointLayout layout{1, 1, 1, 0, 0, 0, 0};
  return save_checkpoint(out_dir, state, layout, nullptr, config_yaml, nlohmann::json(), 0);
}

}  // namespace tessera
