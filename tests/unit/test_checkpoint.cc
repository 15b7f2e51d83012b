// Checkpoint tests: bit-exact round trip, loading under every other (tp, pp) layout
// (vocabulary padding 65 -> 66 -> 68 included), the commit protocol (latest, unfinished
// saves skipped with a warning, keep pruning), export, inspect and offline resharding.
// Multi-rank saves through MPI are in tests/mpi/checkpoint_tests.cc.
#include <catch2/catch.hpp>
#include <filesystem>

#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/io/safetensors.h"
#include "runtime/model/model.h"

#include "tests/unit/checkpoint_test_util.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using namespace tessera;
using namespace tessera::ckpt_test;

TEST_CASE("checkpoint: save_checkpoint then load_checkpoint is bit-exact", "[checkpoint]") {
  TempDir dir;
  SimRun saved = build_run("gpt", 1, 1, true);
  CheckpointState state = saved.state(0);
  state.step = 42;
  state.optimizer_steps = 40;
  state.extra = {{"skipped_steps", 2}};
  auto world = local_world();
  const SaveResult result = save_checkpoint(dir.path, state, saved.layout(0), world.get(),
                                            "model: {arch: gpt}\n", {{"kind", "bytes"}, {"size", 256}}, 3);
  CHECK(result.step_dir == dir / "step_42");
  CHECK(result.bytes == fs::file_size(dir / "step_42/shard_tp0_pp0.safetensors"));
  CHECK(read_text(dir / "latest") == "step_42\n");
  CHECK_FALSE(fs::exists(dir / "step_42.tmp"));

  SimRun loaded = build_run("gpt", 1, 1, false);
  CheckpointState into = loaded.state(0);
  CHECK(load_checkpoint(dir / "step_42", into, 0, 1) == 42);
  CHECK(into.step == 42);
  CHECK(into.optimizer_steps == 40);
  check_run(loaded, 1);

  const Manifest m = read_manifest(dir / "step_42");
  CHECK(m.version == 1);
  CHECK(m.layout.dp == 1);
  CHECK(m.config_yaml == "model: {arch: gpt}\n");
  CHECK(m.vocabulary["kind"] == "bytes");
  CHECK(m.extra["skipped_steps"] == 2);
  CHECK(m.moments == std::vector<std::string>{"exp_avg", "exp_avg_sq"});
  REQUIRE(m.files.size() == 1);
  CHECK(m.files[0].name == "shard_tp0_pp0.safetensors");
  // Model order, and the safetensors keys are param./exp_avg./exp_avg_sq. + the name.
  CHECK(m.tensors.front().name == "wte.weight");
  CHECK(m.tensors.back().name == "lm_head.weight");
  const SafetensorsFile f = read_safetensors(dir / "step_42/shard_tp0_pp0.safetensors");
  CHECK(f.tensors.size() == 3 * m.tensors.size());
  CHECK(f.tensors.count("exp_avg_sq.h.1.mlp.c_fc.weight") == 1);

  // A single process without MPI passes no communicator.
  state.step = 43;
  save_checkpoint(dir.path, state, saved.layout(0), nullptr, "", nullptr, 3);
  CHECK(find_latest_checkpoint(dir.path, nullptr, nullptr) == dir / "step_43");
}

TEST_CASE("checkpoint: a checkpoint saved under one (tp, pp) loads under every other", "[checkpoint]") {
  const std::vector<std::pair<int, int>> layouts = {{1, 1}, {2, 1}, {4, 1}, {2, 2}, {1, 4}, {4, 2}};
  for (const std::string arch : {"gpt", "mlp"}) {
    for (const auto& [tp, pp] : layouts) {
      if (arch == "mlp" && pp == 4) continue;  // the MLP's 5 layers: stages of 1 or 2
      TempDir dir;
      SimRun saved = build_run(arch, tp, pp, true);
      save_run(saved, dir.path, 5, 0);
      for (const auto& [tp2, pp2] : layouts) {
        INFO(arch << ": saved under tp " << tp << " pp " << pp << ", loaded under tp " << tp2 << " pp "
                  << pp2);
        SimRun loaded = build_run(arch, tp2, pp2, false);
        load_run(loaded, dir / "step_5");
        check_run(loaded, tp);
      }
    }
  }
}

TEST_CASE("checkpoint: vocabulary padding 65 -> 66 -> 68 -> 65 keeps the real rows", "[checkpoint]") {
  TempDir dir;
  SimRun tp1 = build_run("gpt", 1, 1, true);
  save_run(tp1, dir / "a", 1, 0);
  const Manifest m = read_manifest(dir / "a/step_1");
  CHECK(m.find("wte.weight")->global_shape == Shape{65, 32});
  CHECK(m.find("wte.weight")->rows == 65);
  CHECK(m.find("lm_head.weight")->rows == 65);
  CHECK(m.find("wpe.weight")->rows == -1);

  // 1 -> 2: a zero row is added; 2 -> 4: rows 65..67 are zero; 4 -> 1: back to 65 rows.
  SimRun tp2 = build_run("gpt", 2, 1, false);
  load_run(tp2, dir / "a/step_1");
  check_run(tp2, 1);
  const Parameter* wte = tp2.shards[1].model->find("wte.weight");
  CHECK(wte->global_shape == Shape{66, 32});
  for (int64_t c = 0; c < 32; ++c) CHECK(wte->value.f32()[32 * 32 + c] == 0.0f);  // global row 65
  save_run(tp2, dir / "b", 2, 0);
  CHECK(read_manifest(dir / "b/step_2").find("wte.weight")->global_shape == Shape{66, 32});

  SimRun tp4 = build_run("gpt", 4, 1, false);
  load_run(tp4, dir / "b/step_2");
  const Parameter* head3 = tp4.shards[3].model->find("lm_head.weight");  // global rows 51..67
  REQUIRE(head3->global_shape == Shape{68, 32});
  const Tensor want = expected_global("lm_head.weight", {65, 32}, 1);
  for (int64_t r = 51; r < 68; ++r) {
    for (int64_t c = 0; c < 32; ++c) {
      CHECK(head3->value.f32()[(r - 51) * 32 + c] == (r < 65 ? want.f32()[r * 32 + c] : 0.0f));
    }
  }
  save_run(tp4, dir / "c", 3, 0);
  SimRun back = build_run("gpt", 1, 1, false);
  load_run(back, dir / "c/step_3");
  check_run(back, 4);
}

TEST_CASE("checkpoint: weights-only save loads weights", "[checkpoint]") {
  TempDir dir;
  SimRun saved = build_run("mlp", 2, 1, true);
  save_run(saved, dir.path, 3, 0, /*with_moments=*/false);
  CHECK(read_manifest(dir / "step_3").moments.empty());
  SimRun loaded = build_run("mlp", 1, 1, false);
  load_run(loaded, dir / "step_3", false);
  check_run(loaded, 2, false);
}

TEST_CASE("checkpoint: find_latest_checkpoint follows latest and skips unfinished saves", "[checkpoint]") {
  TempDir dir;
  std::vector<std::string> warnings;
  CHECK_FALSE(find_latest_checkpoint(dir / "absent", &warnings).has_value());
  CHECK_FALSE(find_latest_checkpoint(dir.path, &warnings).has_value());
  CHECK(warnings.empty());

  SimRun run = build_run("gpt", 2, 1, true);
  save_run(run, dir.path, 10, 0);
  // A save killed before its manifest: a step directory with a shard file only (as older
  // layouts of the directory could leave), and a staging directory (as this one leaves).
  fs::create_directory(dir / "step_20");
  fs::copy_file(dir / "step_10/shard_tp0_pp0.safetensors", dir / "step_20/shard_tp0_pp0.safetensors");
  begin_checkpoint(dir.path, 30);
  CHECK(find_latest_checkpoint(dir.path, &warnings) == dir / "step_10");
  CHECK(warnings ==
        std::vector<std::string>{fmt::format(
            "{}: no manifest.json (a save or removal that did not finish); ignored", dir / "step_20")});

  // `latest` naming an unfinished directory, or missing: the newest complete one is used.
  write_text(dir / "latest", "step_20\n");
  warnings.clear();
  CHECK(find_latest_checkpoint(dir.path, &warnings) == dir / "step_10");
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[1] == fmt::format("{} names \"step_20\", which is not a complete checkpoint; using {}",
                                   dir / "latest", dir / "step_10"));
  fs::remove(dir / "latest");
  warnings.clear();
  CHECK(find_latest_checkpoint(dir.path, &warnings) == dir / "step_10");
  CHECK(warnings.back() == fmt::format("{} is missing; using the newest complete checkpoint {}",
                                       dir / "latest", dir / "step_10"));

  // A complete directory newer than `latest` (killed between the rename and `latest`).
  save_run(run, dir.path, 40, 0);
  fs::rename(dir / "step_40", dir / "step_50");
  warnings.clear();
  CHECK(find_latest_checkpoint(dir.path, &warnings) == dir / "step_50");  // latest names step_40, gone
  write_text(dir / "latest", "step_10\n");
  warnings.clear();
  CHECK(find_latest_checkpoint(dir.path, &warnings) == dir / "step_10");
  CHECK(warnings.back() == fmt::format("{} is complete but newer than {} (the save stopped before `latest` "
                                       "was replaced); resuming from step_10",
                                       dir / "step_50", dir / "latest"));
  CHECK(resolve_checkpoint(dir.path) == dir / "step_10");
  CHECK(resolve_checkpoint(dir / "step_50") == dir / "step_50");
}

TEST_CASE("checkpoint: a save stopped at any step leaves the previous checkpoint loadable", "[checkpoint]") {
  TempDir dir;
  SimRun run = build_run("gpt", 2, 1, true);
  save_run(run, dir.path, 1, 3);
  // Each prefix of the save protocol, as if the job were killed right after it.
  const std::vector<std::function<void()>> stages = {
      [&] { begin_checkpoint(dir.path, 2); },
      [&] { write_shard_file(dir / "step_2.tmp", run.state(0), run.layout(0)); },
      [&] { write_shard_file(dir / "step_2.tmp", run.state(1), run.layout(1)); },
      [&] {
        CheckpointState s = run.state(0);
        s.step = 2;
        std::vector<ShardRecord> records = {
            write_shard_file(dir / "step_2.tmp", s, run.layout(0)),
            write_shard_file(dir / "step_2.tmp", run.state(1), run.layout(1))};
        write_manifest(dir / "step_2.tmp", build_manifest(s, run.layout(0), "", nullptr, records));
      }};
  for (const auto& stage : stages) {
    stage();
    std::vector<std::string> warnings;
    CHECK(find_latest_checkpoint(dir.path, &warnings) == dir / "step_1");
    CHECK(warnings.empty());
    SimRun loaded = build_run("gpt", 1, 1, false);
    load_run(loaded, *find_latest_checkpoint(dir.path, nullptr));
    check_run(loaded, 2);
  }
  // ... and the commit makes the new one current.
  commit_checkpoint(dir.path, 2, 3);
  CHECK(find_latest_checkpoint(dir.path, nullptr) == dir / "step_2");
}

TEST_CASE("checkpoint: keep prunes old checkpoints once the new one is committed", "[checkpoint]") {
  TempDir dir;
  SimRun run = build_run("mlp", 1, 1, true);
  fs::create_directories(dir / "step_0");  // unfinished, older than what follows
  for (int step = 1; step <= 5; ++step) {
    const SaveResult r = save_run(run, dir.path, step, 2);
    if (step == 1) CHECK(r.removed == std::vector<std::string>{dir / "step_0"});
    if (step >= 3) CHECK(r.removed == std::vector<std::string>{dir / fmt::format("step_{}", step - 2)});
  }
  begin_checkpoint(dir.path, 9);            // a stale staging directory
  fs::create_directories(dir / "step_99");  // unfinished but newer: not ours to judge
  save_run(run, dir.path, 6, 2);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"latest", "step_5", "step_6", "step_99"});
  CHECK(list_checkpoints(dir.path) ==
        std::vector<std::pair<int64_t, std::string>>{{5, dir / "step_5"}, {6, dir / "step_6"}});
  // keep <= 0 keeps everything; saving a step again replaces it.
  save_run(run, dir.path, 7, 0);
  save_run(run, dir.path, 7, 0);
  CHECK(list_checkpoints(dir.path).size() == 3);
}

TEST_CASE("checkpoint: export_consolidated writes the unpadded global tensors", "[checkpoint]") {
  TempDir dir;
  SimRun run = build_run("gpt", 4, 2, true);
  save_run(run, dir.path, 8, 0);
  export_consolidated(dir / "step_8", dir / "model.safetensors");
  const SafetensorsFile f = read_safetensors(dir / "model.safetensors");
  const Manifest m = read_manifest(dir / "step_8");
  REQUIRE(f.tensors.size() == m.tensors.size());
  CHECK(f.metadata.at("format") == "pt");
  CHECK(f.metadata.at("step") == "8");
  CHECK(f.tensors.at("wte.weight").shape() == Shape{65, 32});
  CHECK(f.tensors.at("lm_head.weight").shape() == Shape{65, 32});
  CHECK(f.tensors.at("h.1.attn.c_attn.weight").shape() == Shape{96, 32});
  for (const TensorEntry& t : m.tensors) {
    Shape shape = t.global_shape;
    if (t.rows >= 0) shape[0] = t.rows;
    INFO(t.name);
    CHECK(same_bits(f.tensors.at(t.name), expected_global(t.name, shape, 1)));
  }
  export_consolidated(dir / "step_8", dir / "nanogpt.safetensors", {"transformer."});
  const SafetensorsFile g = read_safetensors(dir / "nanogpt.safetensors");
  CHECK(g.tensors.count("transformer.wte.weight") == 1);
  CHECK(g.tensors.count("transformer.h.0.ln_1.bias") == 1);
  CHECK(g.tensors.count("lm_head.weight") == 1);
}

TEST_CASE("checkpoint: inspect prints the layout, step, files and tensors", "[checkpoint]") {
  TempDir dir;
  SimRun run = build_run("gpt", 2, 2, true);
  save_run(run, dir.path, 7, 0);
  const std::string text = inspect_checkpoint(dir / "step_7");
  CHECK_THAT(text, Contains("step: 7 (optimizer steps 7; moments: exp_avg, exp_avg_sq)"));
  CHECK_THAT(text, Contains("layout: dp 1, tp 2, pp 2, zero_stage 0 (world 4)"));
  CHECK_THAT(text, Contains("vocabulary: tokens, 65 entries"));
  CHECK_THAT(text, Contains("files: 4 ("));
  CHECK_THAT(text, Contains("shard_tp1_pp1.safetensors  tp 1  pp 1"));
  CHECK_THAT(text, Contains("F32 [66, 32] (65 real rows)  split(axis 0)  pp 0"));
  CHECK_THAT(text, Contains("F32 [96, 32]  split(axis 0, 3 blocks)  pp 0"));
  CHECK_THAT(text, Contains("lm_head.weight"));
  CHECK_THAT(text, Contains("config:\n  model:\n    arch: gpt\n"));
}

TEST_CASE("checkpoint: reshard_checkpoint rewrites a checkpoint for another layout", "[checkpoint]") {
  TempDir dir;
  SimRun run = build_run("gpt", 2, 1, true);
  save_run(run, dir / "src", 4, 0);
  // tp 4, pp 2: embedding and h.0 in stage 0, h.1 and the head in stage 1.
  const auto stage_of = [](const std::string& name) {
    return name.rfind("wte", 0) == 0 || name.rfind("wpe", 0) == 0 || name.rfind("h.0.", 0) == 0 ? 0 : 1;
  };
  const SaveResult r = reshard_checkpoint(dir / "src/step_4", dir / "dst", {2, 4, 2, 0, 0, 0, 1}, stage_of);
  CHECK(r.step_dir == dir / "dst/step_4");
  const Manifest m = read_manifest(dir / "dst/step_4");
  CHECK(m.layout.tp == 4);
  CHECK(m.layout.pp == 2);
  CHECK(m.layout.dp == 2);
  CHECK(m.layout.zero_stage == 1);
  CHECK(m.files.size() == 8);
  CHECK(m.find("wte.weight")->global_shape == Shape{68, 32});
  CHECK(m.find("ln_f.weight")->pp_rank == 1);
  CHECK(m.extra["note"] == "simulated");
  SimRun loaded = build_run("gpt", 4, 2, false);
  load_run(loaded, dir / "dst/step_4");
  check_run(loaded, 2);  // the padding changed from 66 to 68 rows: rows 65..67 are zero
  SimRun single = build_run("gpt", 1, 1, false);
  load_run(single, dir / "dst/step_4");
  check_run(single, 2);
}
