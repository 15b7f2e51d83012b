// Tiny GPT checkpoints for the inference tests, written with the checkpoint save steps (no
// MPI): every (tp, pp) shard is a training Model whose values come from one set of global
// tensors, so any layout must give the same logits.
#include "tests/unit/test_inference_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>

#include "launcher/config_loader.h"
#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/model/model.h"
#include "runtime/splitmix64.h"

namespace tessera::inference_test {

namespace {


// Element i of a parameter's global tensor: uniform in [-0.5, 0.5) (scaled by 1/sqrt of its
// fan-in for matrices), plus 1 for LayerNorm weights, so every term of the forward matters.
float global_value(const std::string& name, const Shape& shape, int64_t i) {
  const double u = static_cast<double>(splitmix64(std::hash<std::string>{}(name) ^ splitmix64(static_cast<uint64_t>(i))) >> 11) *
                       0x1.0p-53 - 0.5;
  if (shape.size() == 2) return static_cast<float>(2.0 * u / std::sqrt(static_cast<double>(shape[1])));
  const bool ln_weight = name.find("ln_") != std::string::npos && name.ends_with(".weight");
  return static_cast<float>(ln_weight ? 1.0 + 0.5 * u : 0.2 * u);
}

}  // namespace

Vocabulary test_vocabulary() {
  std::string text;
  for (char c = ' '; c <= '`'; ++c) text += c;
  return Vocabulary::chars(text);
}


std::string save_tiny_checkpoint(const std::string& dir, int tp, int pp) {
  Config config;
  config.model = tiny_gpt_config();
  config.parallel.tensor_model_parallel_size = tp;
  config.parallel.pipeline_model_parallel_size = pp;
  const Vocabulary vocab = test_vocabulary();
  const LayerGraph graph = build_layer_graph(config.model, vocab.size(), 4);
  const int layers = static_cast<int>(graph.layers.size());
  const int64_t step = 7;
  const std::string staging = begin_checkpoint(dir, step);
  std::vector<ShardRecord> records;
  CheckpointState first;
  std::vector<std::unique_ptr<Model>> models;
  for (int p = 0; p < pp; ++p) {
    for (int t = 0; t < tp; ++t) {
      models.push_back(std::make_unique<Model>(config.model, graph, TpGroup{nullptr, t, tp}, 5, p * layers / pp,
                                               (p + 1) * layers / pp));
      CheckpointState state;
      state.step = step;
      state.model = config.model;
      state.params = models.back()->parameters();
      state.padded_rows = vocab_padded_rows(config.model, graph);
      for (Parameter* param : state.params) {
        const auto rows = state.padded_rows.find(param->name);
        Tensor global = Tensor::zeros(param->global_shape);
        const int64_t real = rows == state.padded_rows.end() ? global.numel()
                                                             : rows->second * param->global_shape[1];
        for (int64_t i = 0; i < real; ++i) global.f32()[i] = global_value(param->name, param->global_shape, i);
        param->value.copy_from(take_shard(global, param->shard, t, tp));
      }
      records.push_back(write_shard_file(staging, state, {1, tp, pp, 0, t, p, 0}));
      if (records.size() == 1) first = state;
    }
  }
  write_manifest(staging, build_manifest(first, {1, tp, pp, 0, 0, 0, 0}, config_to_yaml(config), vocab.to_json(),
                                         records));
  return commit_checkpoint(dir, step, 0).step_dir;
}

double relative_error(const float* got, const float* want, int64_t n) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(got[i] - want[i])));
    scale = std::max(scale, static_cast<double>(std::abs(want[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

Tensor random_tokens(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  Tensor t = Tensor::empty({B, T}, DType::I32);
  for (int64_t i = 0; i < B * T; ++i) t.i32()[i] = static_cast<int32_t>(splitmix64(seed * 1000 + i) % vocab);
  return t;
}

}  // namespace tessera::inference_test
