// Dp-sharded (ZeRO) checkpoints: every dp rank writes the element ranges it owns into its own
// file (CheckpointState::owned), and the result loads under every (tp, pp) layout like a
// whole-shard checkpoint; a manifest whose parts leave a range uncovered, and a part file that
// is gone, are each refused with one line naming the tensor and the range.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/checkpoint/checkpoint.h"
#include "tests/unit/checkpoint_test_util.h"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::ckpt_test;

namespace {

// Every shard of `run` saved as `dp` ranks would under ZeRO: rank d owns the d-th of dp
// contiguous element ranges of each parameter's local shard (uneven ones included).
void save_dp_sharded(SimRun& run, const std::string& dir, int64_t step, int dp) {
  const std::string staging = begin_checkpoint(dir, step);
  std::vector<ShardRecord> records;
  for (size_t i = 0; i < run.shards.size(); ++i) {
    for (int d = 0; d < dp; ++d) {
      CheckpointState s = run.state(i);
      s.step = step;
      std::vector<OwnedRange> owned;
      for (size_t j = 0; j < s.params.size(); ++j) {
        const int64_t n = s.params[j]->value.numel(), b = n * d / dp, e = n * (d + 1) / dp;
        if (b == e) continue;
        const auto part = [&](const Tensor& t) { return t.view({n}).narrow(b, e - b); };
        owned.push_back({j, b, part(s.params[j]->value), part(s.moments[j]->exp_avg), part(s.moments[j]->exp_avg_sq)});
      }
      s.owned = std::move(owned);
      CheckpointLayout layout = run.layout(i);
      layout.dp = dp;
      layout.dp_rank = d;
      layout.zero_stage = 3;
      records.push_back(write_shard_file(staging, s, layout));
    }
  }
  CheckpointState s0 = run.state(0);
  s0.step = step;
  s0.owned.emplace();
  CheckpointLayout layout0 = run.layout(0);
  layout0.dp = dp;
  layout0.zero_stage = 3;
  write_manifest(staging, build_manifest(s0, layout0, "", nullptr, records));
  commit_checkpoint(dir, step, 0);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("checkpoint: a dp-sharded save loads under every (tp, pp) layout", "[checkpoint][zero]") {
  const std::vector<std::pair<int, int>> layouts = {{1, 1}, {2, 1}, {2, 2}, {1, 4}};
  for (const auto& [tp, pp] : {std::pair(1, 1), std::pair(2, 2)}) {
    TempDir dir;
    SimRun saved = build_run("gpt", tp, pp, true);
    save_dp_sharded(saved, dir.path, 7, 3);
    CHECK(fs::exists(dir / "step_7/shard_tp0_pp0_dp2.safetensors"));
    CHECK_FALSE(fs::exists(dir / "step_7/shard_tp0_pp0.safetensors"));
    const Manifest m = read_manifest(dir / "step_7");
    CHECK(m.files.size() == static_cast<size_t>(3 * tp * pp));
    CHECK(m.tensors.front().name == "wte.weight");  // model order, as whole-shard saves
    CHECK(m.tensors.front().pieces.size() == static_cast<size_t>(3 * (tp > 1 ? tp : 1)));
    for (const auto& [tp2, pp2] : layouts) {
      INFO("saved under dp 3 x tp " << tp << " x pp " << pp << ", loaded under tp " << tp2 << " pp " << pp2);
      SimRun loaded = build_run("gpt", tp2, pp2, false);
      load_run(loaded, dir / "step_7");
      check_run(loaded, tp);
    }
  }
}

TEST_CASE("checkpoint: dp-sharded parts that do not cover a tensor are refused with the range", "[checkpoint][zero]") {
  TempDir dir;
  SimRun saved = build_run("gpt", 1, 1, true);
  save_dp_sharded(saved, dir.path, 3, 2);
  const std::string step_dir = dir / "step_3", manifest = dir / "step_3/manifest.json";
  nlohmann::json j = nlohmann::json::parse(read_text(manifest));

  SECTION("a part missing from the manifest") {
    for (auto& t : j["tensors"]) {
      if (t["name"] != "h.0.attn.c_attn.weight") continue;
      const int64_t b = t["pieces"][1]["elements"][0], e = t["pieces"][1]["elements"][1];
      t["pieces"].erase(1);
      write_text(manifest, j.dump());
      CHECK(error_of([&] { read_manifest(step_dir); }) ==
            fmt::format("{}: tensor 'h.0.attn.c_attn.weight': elements [{}, {}) of tp rank 0 are in no shard file",
                        manifest, b, e));
    }
  }
  SECTION("a part file deleted") {
    fs::remove(dir / "step_3/shard_tp0_pp0_dp1.safetensors");
    const auto& wte = j["tensors"][0];
    REQUIRE(wte["name"] == "wte.weight");
    const int64_t b = wte["pieces"][1]["elements"][0], e = wte["pieces"][1]["elements"][1];
    SimRun loaded = build_run("gpt", 1, 1, false);
    CHECK(error_of([&] { load_run(loaded, step_dir); }) ==
          fmt::format("{}: parameter 'wte.weight' elements [{}, {}) of tp rank 0 are not covered: "
                      "{}/shard_tp0_pp0_dp1.safetensors: cannot read: No such file or directory (listed in {})",
                      step_dir, b, e, step_dir, manifest));
  }
  SECTION("parts that overlap") {
    auto& piece = j["tensors"][0]["pieces"][1];
    piece["elements"][0] = piece["elements"][0].get<int64_t>() - 1;
    write_text(manifest, j.dump());
    CHECK_THAT(error_of([&] { read_manifest(step_dir); }),
               Catch::Matchers::Contains("tensor 'wte.weight': elements") &&
                   Catch::Matchers::Contains("of tp rank 0 are saved twice"));
  }
}
