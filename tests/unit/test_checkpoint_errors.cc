// Bad checkpoints: every rule of the manifest, and every way a shard file can disagree with
// it, gives one exact line naming the file, the tensor and the rule (an InputError), and
// leaves the checkpoint directory untouched.
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <map>

#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/io/safetensors.h"
#include "runtime/model/model.h"

#include "tests/unit/checkpoint_test_util.h"

namespace fs = std::filesystem;
using Catch::Matchers::Message;
using nlohmann::json;
using namespace tessera;
using namespace tessera::ckpt_test;

namespace {

// A tp 2 GPT checkpoint at <dir>/step_3, and its pristine manifest.
struct Fixture {
  std::string dir = make_temp_dir();
  std::string step_dir = (fs::path(dir) / "step_3").string();
  std::string manifest = (fs::path(step_dir) / "manifest.json").string();
  std::string original;
  Fixture() {
    SimRun run = build_run("gpt", 2, 1, true);
    save_run(run, dir, 3, 0);
    original = read_text(manifest);
  }
  ~Fixture() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (fs::path(step_dir) / name).string(); }
  void edit(const std::function<void(json&)>& change) const {
    json j = json::parse(original);
    change(j);
    write_text(manifest, j.dump(1));
  }
  // Rewrites a shard file through `change` and records its new size in the manifest.
  void edit_shard(const std::string& name, const std::function<void(SafetensorsFile&)>& change) const {
    SafetensorsFile f = read_safetensors(file(name));
    change(f);
    write_safetensors(file(name), f.tensors, f.metadata);
    edit([&](json& j) {
      for (json& e : j["files"]) {
        if (e["name"] == name) e["bytes"] = fs::file_size(file(name));
      }
    });
  }
};

// name -> size of every file under dir.
std::map<std::string, uintmax_t> snapshot(const std::string& dir) {
  std::map<std::string, uintmax_t> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files[e.path().string()] = e.file_size();
  }
  return files;
}

// Matches an exception whose message starts with `prefix` (for messages ending in OS or
// JSON-library text).
class StartsWith : public Catch::MatcherBase<std::exception> {
 public:
  explicit StartsWith(std::string prefix) : prefix_(std::move(prefix)) {}
  bool match(const std::exception& e) const override { return std::string(e.what()).rfind(prefix_, 0) == 0; }
  std::string describe() const override { return "message starts with \"" + prefix_ + "\""; }

 private:
  std::string prefix_;
};

struct ManifestCase {
  const char* what;
  std::function<void(json&)> change;
  std::string message;  // after "<manifest path>: "
};

}  // namespace

TEST_CASE("checkpoint errors: every manifest rule has its own message", "[checkpoint]") {
  Fixture fx;
  const auto t0 = [](json& j) -> json& { return j["tensors"][0]; };  // wte.weight, split(0) over tp 2
  const std::vector<ManifestCase> cases = {
      {"not an object", [](json& j) { j = json::array(); }, "must be a JSON object"},
      {"format", [](json& j) { j["format"] = "other"; },
       "\"format\" must be \"tessera-checkpoint\", not \"other\""},
      {"version", [](json& j) { j["version"] = 2; },
       "format version 2 is not supported (this build reads version 1)"},
      {"step", [](json& j) { j["step"] = -1; },
       "\"step\" must be an integer in [0, 9223372036854775807], not -1"},
      {"step type", [](json& j) { j["step"] = "3"; },
       "\"step\" must be an integer in [0, 9223372036854775807], not \"3\""},
      {"no optimizer", [](json& j) { j.erase("optimizer"); }, "missing \"optimizer\""},
      {"moment name", [](json& j) { j["optimizer"]["moments"] = {"m"}; },
       "optimizer.moments may only name \"exp_avg\" and \"exp_avg_sq\", not \"m\""},
      {"moment twice",
       [](json& j) {
         j["optimizer"]["moments"] = {"exp_avg", "exp_avg"};
       },
       "optimizer.moments names \"exp_avg\" twice"},
      {"tp 0", [](json& j) { j["layout"]["tp"] = 0; },
       "\"layout.tp\" must be an integer in [1, 1048576], not 0"},
      {"world", [](json& j) { j["layout"]["world"] = 3; }, "layout.world 3 is not dp 1 x tp 2 x pp 1"},
      {"zero stage", [](json& j) { j["layout"]["zero_stage"] = 5; },
       "\"layout.zero_stage\" must be an integer in [0, 3], not 5"},
      {"config", [](json& j) { j["config_yaml"] = 5; }, "\"config_yaml\" must be a string, not 5"},
      {"vocabulary", [](json& j) { j["vocabulary"] = "x"; }, "\"vocabulary\" must be an object or null"},
      {"model", [](json& j) { j["model"] = 3; }, "\"model\" must be an object or null"},
      {"model arch", [](json& j) { j["model"]["arch"] = "rnn"; }, "model.arch \"rnn\" must be \"gpt\", \"llama\" or \"mlp\""},
      {"model layers", [](json& j) { j["model"]["num_layers"] = 0; },
       "\"model.num_layers\" must be an integer in [1, 1073741824], not 0"},
      {"model heads", [](json& j) { j["model"]["num_attention_heads"] = 5; },
       "model.hidden_size = 32: must be divisible by model.num_attention_heads = 5"},
      {"model init", [](json& j) { j["model"]["init_std"] = "big"; },
       "\"model.init_std\" must be a number, not \"big\""},
      {"extra", [](json& j) { j["extra"] = 1; }, "\"extra\" must be an object"},
      {"file outside the directory", [](json& j) { j["files"][0]["name"] = "../../etc/passwd"; },
       "files[0]: name \"../../etc/passwd\" must be \"shard_tp0_pp0.safetensors\" for tp_rank 0 and pp_rank "
       "0"},
      {"file twice", [](json& j) { j["files"][1] = j["files"][0]; },
       "files[1]: \"shard_tp0_pp0.safetensors\" is listed twice"},
      {"file tp rank", [](json& j) { j["files"][0]["tp_rank"] = 2; },
       "files[0]: \"tp_rank\" must be an integer in [0, 1], not 2"},
      {"no name", [&](json& j) { t0(j).erase("name"); }, "tensors[0]: missing \"name\""},
      {"dtype", [&](json& j) { t0(j)["dtype"] = "F64"; },
       "tensor 'wte.weight': dtype \"F64\" is not one of F32, BF16, F16, I32, U16"},
      {"negative dim",
       [&](json& j) {
         t0(j)["global_shape"] = {66, -32};
       },
       "tensor 'wte.weight': global_shape must be an array of non-negative integers, not [66,-32]"},
      {"huge shape",
       [&](json& j) {
         t0(j)["global_shape"] = {1ull << 40, 1ull << 40};
       },
       "tensor 'wte.weight': global_shape [1099511627776,1099511627776] has more elements than fit in 64 "
       "bits"},
      {"shard kind", [&](json& j) { t0(j)["shard"]["kind"] = "diagonal"; },
       "tensor 'wte.weight': shard.kind \"diagonal\" must be \"replicated\" or \"split\""},
      {"shard axis", [&](json& j) { t0(j)["shard"]["axis"] = 2; },
       "tensor 'wte.weight': shard axis 2 is out of range for global shape [66, 32]"},
      {"indivisible",
       [&](json& j) {
         t0(j)["global_shape"] = {65, 32};
       },
       "tensor 'wte.weight': axis 0 of global shape [65, 32] does not split into 1 blocks over tp 2"},
      {"rows", [&](json& j) { t0(j)["rows"] = 70; },
       "tensor 'wte.weight': \"rows\" must be an integer in [0, 66], not 70"},
      {"pp rank", [&](json& j) { t0(j)["pp_rank"] = 1; },
       "tensor 'wte.weight': \"pp_rank\" must be an integer in [0, 0], not 1"},
      {"missing piece", [&](json& j) { t0(j)["pieces"].erase(1); },
       "tensor 'wte.weight': has 1 pieces; a split(axis 0) tensor saved under tp 2 has 2"},
      {"extra replicated piece",
       [](json& j) { j["tensors"][1]["pieces"].push_back(j["tensors"][1]["pieces"][0]); },
       "tensor 'wpe.weight': has 2 pieces; a replicated tensor saved under tp 2 has 1"},
      {"pieces out of order", [&](json& j) { std::swap(t0(j)["pieces"][0], t0(j)["pieces"][1]); },
       "tensor 'wte.weight' pieces[0] has tp_rank 1, expected 0"},
      {"unlisted file", [&](json& j) { t0(j)["pieces"][0]["file"] = "shard_tp0_pp1.safetensors"; },
       "tensor 'wte.weight' pieces[0] names file \"shard_tp0_pp1.safetensors\", which is not in \"files\""},
      {"wrong file", [&](json& j) { t0(j)["pieces"][1]["file"] = "shard_tp0_pp0.safetensors"; },
       "tensor 'wte.weight' pieces[1] is in \"shard_tp0_pp0.safetensors\", which holds tp rank 0 of pp stage "
       "0, "
       "not tp rank 1 of pp stage 0"},
      {"piece shape",
       [&](json& j) {
         t0(j)["pieces"][0]["shape"] = {34, 32};
       },
       "tensor 'wte.weight' pieces[0] has shape [34, 32], but a split(axis 0) shard of [66, 32] under tp 2 "
       "is [33, 32]"},
      {"overlapping ranges",
       [&](json& j) {
         t0(j)["pieces"][1]["ranges"] = {{0, 33}};
       },
       "tensor 'wte.weight' pieces[1] has ranges [[0, 33)] along axis 0, but tp rank 1 of 2 holds [[33, "
       "66)]"},
      {"bad range", [&](json& j) { t0(j)["pieces"][1]["ranges"] = {{33}}; },
       "tensor 'wte.weight' pieces[1]: ranges must be [begin, end] pairs of non-negative integers, not [33]"},
      {"tensor twice", [](json& j) { j["tensors"].push_back(j["tensors"][0]); },
       "tensor 'wte.weight' is listed twice"},
  };
  const auto before = snapshot(fx.dir);
  for (const ManifestCase& c : cases) {
    INFO(c.what);
    fx.edit(c.change);
    CHECK_THROWS_MATCHES(read_manifest(fx.step_dir), InputError, Message(fx.manifest + ": " + c.message));
  }
  write_text(fx.manifest, fx.original);
  CHECK(snapshot(fx.dir) == before);
  CHECK(cases.size() >= 35);

  write_text(fx.manifest, fx.original.substr(0, 100));
  CHECK_THROWS_MATCHES(read_manifest(fx.step_dir), InputError,
                       StartsWith(fx.manifest + ": not valid JSON: "));
  fs::remove(fx.manifest);
  CHECK_THROWS_MATCHES(read_manifest(fx.step_dir), InputError,
                       Message(fx.manifest + ": cannot open: No such file or directory"));
}

TEST_CASE("checkpoint errors: a model or shard file that does not match the manifest", "[checkpoint]") {
  Fixture fx;
  const std::string p = fx.manifest;
  const std::string f0 = fx.file("shard_tp0_pp0.safetensors"), f1 = fx.file("shard_tp1_pp0.safetensors");
  const auto load_tp2 = [&] {
    SimRun run = build_run("gpt", 2, 1, false);
    load_run(run, fx.step_dir);
  };

  SECTION("a model with a tensor the checkpoint lacks") {
    SimRun run = build_run("gpt", 1, 1, false);
    run.config.num_layers = 3;
    run.graph = build_layer_graph(run.config, 65, 4);
    run.shards[0].model = std::make_unique<Model>(run.config, run.graph, TpGroup::single(), 1);
    run.shards[0].moments.resize(run.shards[0].model->parameters().size());
    CHECK_THROWS_MATCHES(load_run(run, fx.step_dir), InputError,
                         Message(p + ": has no tensor 'h.2.ln_1.weight', which the model has"));
  }
  SECTION("a model of another width") {
    SimRun run = build_run("gpt", 1, 1, false);
    run.config.hidden_size = 64;
    run.graph = build_layer_graph(run.config, 65, 4);
    run.shards[0].model = std::make_unique<Model>(run.config, run.graph, TpGroup::single(), 1);
    CHECK_THROWS_MATCHES(
        load_run(run, fx.step_dir, false), InputError,
        Message(p + ": tensor 'wte.weight' has global shape [66, 32] (65 real rows), but the "
                    "model's is [65, 64]"));
  }
  SECTION("moments asked of a weights-only checkpoint") {
    fx.edit([](json& j) { j["optimizer"]["moments"] = json::array(); });
    CHECK_THROWS_MATCHES(load_tp2(), InputError,
                         Message(p + ": has no optimizer moments \"exp_avg\" (saved weights only)"));
  }
  SECTION("a missing shard file") {
    fs::remove(f1);
    CHECK_THROWS_MATCHES(load_tp2(), InputError,
                         Message(f1 + ": cannot read: No such file or directory (listed in " + p + ")"));
  }
  SECTION("a truncated shard file") {
    const uintmax_t size = fs::file_size(f1);
    fs::resize_file(f1, size - 10);
    CHECK_THROWS_MATCHES(load_tp2(), InputError,
                         Message(fmt::format("{}: is {} bytes, but {} records {}", f1, size - 10, p, size)));
  }
  SECTION("a corrupt shard file of the right size") {
    write_text(f1, std::string(fs::file_size(f1), '\xff'));
    CHECK_THROWS_MATCHES(load_tp2(), InputError, StartsWith(f1 + ": header length"));
  }
  SECTION("a shard file without a tensor the manifest lists") {
    fx.edit_shard("shard_tp1_pp0.safetensors",
                  [](SafetensorsFile& f) { f.tensors.erase("exp_avg.wte.weight"); });
    CHECK_THROWS_MATCHES(load_tp2(), InputError,
                         Message(f1 + ": has no tensor 'exp_avg.wte.weight', which " + p + " lists"));
  }
  SECTION("a shard tensor of the wrong shape") {
    fx.edit_shard("shard_tp0_pp0.safetensors", [](SafetensorsFile& f) {
      f.tensors["param.wte.weight"] = Tensor::zeros({33, 16});
    });
    CHECK_THROWS_MATCHES(
        load_tp2(), InputError,
        Message(f0 + ": tensor 'param.wte.weight' has shape [33, 16], but " + p + " says [33, 32]"));
  }
  SECTION("a shard tensor of the wrong dtype") {
    fx.edit_shard("shard_tp0_pp0.safetensors", [](SafetensorsFile& f) {
      f.tensors["param.wte.weight"] = Tensor::zeros({33, 32}, DType::I32);
    });
    CHECK_THROWS_MATCHES(load_tp2(), InputError,
                         Message(f0 + ": tensor 'param.wte.weight' is I32, but " + p + " says F32"));
  }
}

TEST_CASE("checkpoint errors: tools refuse what they cannot do", "[checkpoint]") {
  Fixture fx;
  const std::string empty = (fs::path(fx.dir) / "empty").string();
  fs::create_directory(empty);
  CHECK_THROWS_MATCHES(
      resolve_checkpoint(empty), InputError,
      Message(empty + ": not a checkpoint (no manifest.json here and no complete step_<N> directory)"));
  const auto one_stage = [](const std::string&) { return 0; };
  CHECK_THROWS_MATCHES(
      reshard_checkpoint(fx.step_dir, empty, {1, 3, 1, 0, 0, 0, 0}, one_stage), InputError,
      Message("reshard: tensor 'h.0.attn.c_attn.weight' of shape [96, 32] cannot be split into "
              "3 blocks over tp 3 on axis 0"));
  CHECK_THROWS_MATCHES(
      reshard_checkpoint(fx.step_dir, empty, {1, 1, 2, 0, 0, 0, 0}, [](const std::string&) { return 2; }),
      InputError, Message("reshard: tensor 'wte.weight' is put in pipeline stage 2 of 2"));
  CHECK_THROWS_MATCHES(
      reshard_checkpoint(fx.step_dir, fx.dir, {1, 1, 1, 0, 0, 0, 0}, one_stage), InputError,
      Message(fmt::format("reshard: the output directory {} must differ from the checkpoint's own {}", fx.dir,
                          fx.dir)));
  const std::string blocked = (fs::path(fx.dir) / "a_file").string();
  write_text(blocked, "x");
  CHECK_THROWS_MATCHES(begin_checkpoint(blocked, 1), InputError,
                       StartsWith("checkpoint.dir " + blocked + ": cannot create: "));
  // Through the collective save, the failing rank is named (every rank throws the same line).
  SimRun run = build_run("mlp", 1, 1, true);
  auto world = local_world();
  CHECK_THROWS_MATCHES(save_checkpoint(blocked, run.state(0), run.layout(0), world.get(), "", nullptr, 1),
                       InputError,
                       StartsWith("saving checkpoint step 0 failed on rank 0: checkpoint.dir " + blocked +
                                  ": cannot create: "));
  std::vector<std::string> warnings;
  CHECK(find_latest_checkpoint(fx.dir, world.get(), &warnings) == fx.step_dir);
}
