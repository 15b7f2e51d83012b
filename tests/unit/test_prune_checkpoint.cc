// Pruning masks in checkpoints: saved as mask.<name> (manifest "masked"), loaded under
// another (tp, pp) layout with every shard's mask cut like its weights, carried by reshard,
// and dropped when a checkpoint without them is loaded.
#include <catch2/catch.hpp>
#include <filesystem>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/compression/magnitude_prune.h"
#include "runtime/compression/mask.h"
#include "runtime/io/safetensors.h"
#include "runtime/model/embedding_layer.h"

#include "tests/unit/checkpoint_test_util.h"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::ckpt_test;

namespace {

// Masks the prunable weights of a one-shard run by magnitude; returns the global masks.
std::map<std::string, Tensor> prune_run(SimRun& run) {
  std::map<std::string, Tensor> weights;
  for (Parameter* p : run.shards[0].model->parameters()) {
    if (is_prunable_weight(p->name, false)) weights.emplace(p->name, p->value.clone());
  }
  MagnitudePruneOptions o;
  o.sparsity = 0.5;
  const auto masks = magnitude_masks(weights, o);
  for (Parameter* p : run.shards[0].model->parameters()) {
    const auto m = masks.find(p->name);
    if (m == masks.end()) continue;
    p->mask = m->second.clone();
    apply_mask(p->value.f32(), p->mask.f32(), p->value.numel());
  }
  return masks;
}

// Every shard of `run` holds its cut of the global masks, and zeros where they prune.
void check_masks(SimRun& run, const std::map<std::string, Tensor>& masks) {
  const auto rows = vocab_padded_rows(run.config, run.graph);
  int64_t masked = 0;
  for (Shard& s : run.shards) {
    for (Parameter* p : s.model->parameters()) {
      const auto m = masks.find(p->name);
      if (m == masks.end()) {
        CHECK_FALSE(p->mask.defined());
        continue;
      }
      REQUIRE(p->mask.defined());
      Tensor g = m->second;
      if (rows.count(p->name) && g.shape() != p->global_shape) g = resize_padded_rows(g, p->global_shape, rows.at(p->name));
      CHECK(same_bits(p->mask, take_shard(g, p->shard, s.tp_rank, run.tp)));
      CHECK(sparsity_stats({p}).nonzero_pruned == 0);
      ++masked;
    }
  }
  CHECK(masked > 0);
}

}  // namespace

TEST_CASE("prune: masks are saved with the weights and load under other (tp, pp) layouts", "[prune][checkpoint]") {
  TempDir dir;
  SimRun saved = build_run("gpt", 1, 1, true);
  const auto masks = prune_run(saved);
  CheckpointState state = saved.state(0);
  state.step = 5;
  save_checkpoint(dir.path, state, saved.layout(0), nullptr, "", nullptr, 3);
  const std::string step_dir = dir.path + "/step_5";
  const Manifest m = read_manifest(step_dir);
  CHECK(m.find("h.0.mlp.c_fc.weight")->masked);
  CHECK_FALSE(m.find("h.0.mlp.c_fc.bias")->masked);
  const SafetensorsFile f = read_safetensors(step_dir + "/shard_tp0_pp0.safetensors");
  CHECK(f.tensors.count("mask.lm_head.weight") == 1);
  CHECK(f.tensors.count("mask.wte.weight") == 0);
  CHECK_THAT(inspect_checkpoint(step_dir), Catch::Matchers::Contains("masked"));

  for (const auto& [tp, pp] : std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {4, 2}, {2, 2}}) {
    SimRun loaded = build_run("gpt", tp, pp, false);
    load_run(loaded, step_dir);
    check_masks(loaded, masks);
  }

  // Resharded offline to tp 2 x pp 2, then loaded under tp 4: the masks travel along.
  const std::string out = dir.path + "/resharded";
  reshard_checkpoint(step_dir, out, CheckpointLayout{1, 2, 2, 0, 0, 0, 0},
                     [&](const std::string& name) { return layer_of_parameter(saved.graph, name) < 2 ? 0 : 1; });
  SimRun again = build_run("gpt", 4, 1, false);
  load_run(again, out + "/step_5");
  check_masks(again, masks);

  // A dense checkpoint clears the masks of the parameters it loads into.
  SimRun dense = build_run("gpt", 1, 1, true);
  const std::string dense_dir = dir.path + "/dense";
  CheckpointState dense_state = dense.state(0);
  save_checkpoint(dense_dir, dense_state, dense.layout(0), nullptr, "", nullptr, 3);
  load_run(again, dense_dir + "/step_0");
  for (Shard& s : again.shards) {
    for (Parameter* p : s.model->parameters()) CHECK_FALSE(p->mask.defined());
  }
}
