// The ONNX graph builder and export: the checker accepts every graph, the opset and the
// interface (names, dtypes, dynamic dims) are as documented, head_dim and mlp shape the
// weights, wrong weights are refused with one clear line, and the export writes a model
// (with external data above the threshold) that ONNX loads back from disk.
#include <onnx/checker.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "launcher/commands.h"
#include "partitioner/layer_graph.h"
#include "runtime/export/onnx_export.h"
#include "runtime/export/onnx_external_data.h"
#include "runtime/export/onnx_model.h"
#include "tests/unit/checkpoint_test_util.h"

namespace fs = std::filesystem;
using Catch::Matchers::Message;
using namespace tessera;

namespace {

ModelConfig tiny_gpt() {
  ModelConfig m;
  m.arch = "gpt";
  m.num_layers = 2;
  m.hidden_size = 16;
  m.num_attention_heads = 2;
  m.ffn_hidden_size = 32;
  m.seq_length = 8;
  return m;
}

ModelConfig tiny_mlp() {
  ModelConfig m;
  m.arch = "mlp";
  m.num_layers = 3;
  m.hidden_size = 12;
  m.input_size = 6;
  m.output_size = 5;
  m.activation = "relu";
  return m;
}

Tensor random_tensor(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.02f);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = normal(rng);
  return t;
}

// Every weight of a GPT with attention width heads * head_dim.
std::map<std::string, Tensor> gpt_weights(const ModelConfig& m, int64_t vocab) {
  const int64_t C = m.hidden_size, A = int64_t{m.num_attention_heads} * attention_head_dim(m), F = ffn_size(m);
  std::map<std::string, Shape> shapes{{"wte.weight", {vocab, C}}, {"wpe.weight", {m.seq_length, C}},
                                      {"ln_f.weight", {C}},        {"ln_f.bias", {C}},
                                      {"lm_head.weight", {vocab, C}}};
  for (int i = 0; i < m.num_layers; ++i) {
    const std::string p = fmt::format("h.{}.", i);
    for (const char* ln : {"ln_1", "ln_2"}) {
      shapes[p + ln + ".weight"] = {C};
      shapes[p + ln + ".bias"] = {C};
    }
    shapes[p + "attn.c_attn.weight"] = {3 * A, C};
    shapes[p + "attn.c_attn.bias"] = {3 * A};
    shapes[p + "attn.c_proj.weight"] = {C, A};
    shapes[p + "attn.c_proj.bias"] = {C};
    shapes[p + "mlp.c_fc.weight"] = {F, C};
    shapes[p + "mlp.c_fc.bias"] = {F};
    shapes[p + "mlp.c_proj.weight"] = {C, F};
    shapes[p + "mlp.c_proj.bias"] = {C};
  }
  std::map<std::string, Tensor> weights;
  uint32_t seed = 1;
  for (const auto& [name, shape] : shapes) weights[name] = random_tensor(shape, seed++);
  return weights;
}

std::map<std::string, Tensor> mlp_weights(const ModelConfig& m, int64_t vocab) {
  std::map<std::string, Tensor> w{{"embedding.weight", random_tensor({vocab, m.input_size}, 1)},
                                  {"head.weight", random_tensor({m.output_size, m.hidden_size}, 2)},
                                  {"head.bias", random_tensor({m.output_size}, 3)}};
  int64_t width = m.input_size;
  for (int i = 0; i < m.num_layers; ++i) {
    w[fmt::format("fc.{}.weight", i)] = random_tensor({m.hidden_size, width}, 10 + i);
    w[fmt::format("fc.{}.bias", i)] = random_tensor({m.hidden_size}, 20 + i);
    width = m.hidden_size;
  }
  return w;
}

// The dims of a graph input/output: dim_param names for dynamic dims, numbers as strings.
std::vector<std::string> dims(const onnx::ValueInfoProto& v) {
  std::vector<std::string> out;
  for (const auto& d : v.type().tensor_type().shape().dim()) {
    out.push_back(d.has_dim_param() ? d.dim_param() : std::to_string(d.dim_value()));
  }
  return out;
}

bool has_initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return true;
  }
  return false;
}

size_t count_ops(const onnx::ModelProto& m, const std::string& op) {
  size_t n = 0;
  for (const auto& node : m.graph().node()) n += node.op_type() == op;
  return n;
}

}  // namespace

TEST_CASE("onnx: the GPT graph passes the checker, with opset 17 and dynamic tokens -> logits", "[onnx]") {
  const ModelConfig m = tiny_gpt();
  const auto weights = gpt_weights(m, 11);
  const onnx::ModelProto proto = build_onnx_model(m, weights, {"ckpt", 7, R"({"kind":"bytes"})"});
  REQUIRE_NOTHROW(onnx::checker::check_model(proto));
  REQUIRE(proto.opset_import_size() == 1);
  CHECK(proto.opset_import(0).domain().empty());
  CHECK(proto.opset_import(0).version() == kOnnxOpset);
  CHECK(kOnnxOpset == 17);
  REQUIRE(proto.graph().input_size() == 1);
  REQUIRE(proto.graph().output_size() == 1);
  const auto& in = proto.graph().input(0);
  const auto& out = proto.graph().output(0);
  CHECK(in.name() == "tokens");
  CHECK(in.type().tensor_type().elem_type() == onnx::TensorProto::INT64);
  CHECK(dims(in) == std::vector<std::string>{"batch", "seq"});
  CHECK(out.name() == "logits");
  CHECK(out.type().tensor_type().elem_type() == onnx::TensorProto::FLOAT);
  CHECK(dims(out) == std::vector<std::string>{"batch", "seq", "11"});
  for (const auto& [name, tensor] : weights) CHECK(has_initializer(proto, name));
  CHECK(count_ops(proto, "LayerNormalization") == 5);
  CHECK(count_ops(proto, "Softmax") == 2);
  CHECK(count_ops(proto, "Tanh") == 2);
  std::map<std::string, std::string> meta;
  for (const auto& e : proto.metadata_props()) meta[e.key()] = e.value();
  CHECK(meta["tessera.step"] == "7");
  CHECK(meta["tessera.arch"] == "gpt");
  CHECK(meta["tessera.vocabulary"] == R"({"kind":"bytes"})");
}

TEST_CASE("onnx: head_dim sets the attention width apart from hidden_size", "[onnx]") {
  ModelConfig m = tiny_gpt();
  m.num_attention_heads = 3;
  m.head_dim = 4;  // width 12 < hidden 16, as after pruning heads
  const onnx::ModelProto proto = build_onnx_model(m, gpt_weights(m, 11), {"ckpt", 0, ""});
  REQUIRE_NOTHROW(onnx::checker::check_model(proto));
  bool found = false;
  for (const auto& t : proto.graph().initializer()) {
    if (t.name() == "qkv_heads") {
      CHECK(std::vector<int64_t>(t.int64_data().begin(), t.int64_data().end()) == std::vector<int64_t>{3, 3, 4});
      found = true;
    }
  }
  CHECK(found);
}

TEST_CASE("onnx: the mlp graph passes the checker, logits of output_size", "[onnx]") {
  ModelConfig m = tiny_mlp();
  for (const char* activation : {"relu", "gelu"}) {
    m.activation = activation;
    const onnx::ModelProto proto = build_onnx_model(m, mlp_weights(m, 9), {"ckpt", 0, ""});
    REQUIRE_NOTHROW(onnx::checker::check_model(proto));
    CHECK(dims(proto.graph().output(0)) == std::vector<std::string>{"batch", "seq", "5"});
    CHECK(count_ops(proto, "Gemm") == 4);
    CHECK(count_ops(proto, "Relu") == (m.activation == "relu" ? 3u : 0u));
    CHECK(count_ops(proto, "Tanh") == (m.activation == "gelu" ? 3u : 0u));
  }
}

TEST_CASE("onnx: weights that do not match the config are refused in one line", "[onnx]") {
  const ModelConfig m = tiny_gpt();
  auto weights = gpt_weights(m, 11);
  SECTION("a wrong shape") {
    weights["h.1.attn.c_proj.weight"] = random_tensor({16, 12}, 5);
    CHECK_THROWS_MATCHES(build_onnx_model(m, weights, {"runs/x/step_3", 0, ""}), InputError,
                         Message("runs/x/step_3: tensor 'h.1.attn.c_proj.weight' has shape [16, 12] but the "
                                 "model config needs [16, 16]"));
  }
  SECTION("a missing tensor") {
    weights.erase("ln_f.bias");
    CHECK_THROWS_MATCHES(build_onnx_model(m, weights, {"runs/x/step_3", 0, ""}), InputError,
                         Message("runs/x/step_3: no tensor 'ln_f.bias', which the model config needs"));
  }
  SECTION("a tensor the config has no place for") {
    weights["h.2.ln_1.weight"] = random_tensor({16}, 5);
    CHECK_THROWS_MATCHES(build_onnx_model(m, weights, {"runs/x/step_3", 0, ""}), InputError,
                         Message("runs/x/step_3: tensor 'h.2.ln_1.weight' is not part of the model the config "
                                 "describes"));
  }
  SECTION("an unknown arch") {
    ModelConfig other = m;
    other.arch = "moe";
    CHECK_THROWS_MATCHES(build_onnx_model(other, weights, {"ckpt", 0, ""}), InputError,
                         Message("model.arch 'moe': the ONNX export knows gpt and mlp"));
  }
}

TEST_CASE("onnx: external data moves every weight's bytes to aligned offsets", "[onnx]") {
  const ModelConfig m = tiny_gpt();
  const auto weights = gpt_weights(m, 11);
  onnx::ModelProto proto = build_onnx_model(m, weights, {"ckpt", 0, ""});
  const onnx::ModelProto inline_proto = proto;
  const std::string data = move_initializers_to_external_data(proto, "model.onnx.data");
  size_t moved = 0;
  for (int i = 0; i < proto.graph().initializer_size(); ++i) {
    const onnx::TensorProto& t = proto.graph().initializer(i);
    const onnx::TensorProto& before = inline_proto.graph().initializer(i);
    if (!before.has_raw_data()) {
      CHECK(t.data_location() == onnx::TensorProto::DEFAULT);
      continue;
    }
    ++moved;
    CHECK(t.data_location() == onnx::TensorProto::EXTERNAL);
    CHECK_FALSE(t.has_raw_data());
    std::map<std::string, std::string> e;
    for (const auto& entry : t.external_data()) e[entry.key()] = entry.value();
    CHECK(e["location"] == "model.onnx.data");
    const size_t offset = std::stoul(e["offset"]), length = std::stoul(e["length"]);
    CHECK(offset % kOnnxExternalAlignment == 0);
    CHECK(length == before.raw_data().size());
    CHECK(data.compare(offset, length, before.raw_data()) == 0);
  }
  CHECK(moved == weights.size());
}

TEST_CASE("onnx: export of a tp 2 x pp 2 checkpoint, inline and with external data", "[onnx]") {
  auto run = ckpt_test::build_run("gpt", 2, 2, true);
  const std::string dir = ckpt_test::make_temp_dir();
  const SaveResult saved = ckpt_test::save_run(run, dir, 5, 1);
  const std::string out = dir + "/model.onnx";

  const OnnxExportResult inline_result = export_onnx(saved.step_dir, out);
  CHECK(inline_result.data_path.empty());
  CHECK(fs::file_size(out) == inline_result.model_bytes);
  CHECK_FALSE(fs::exists(out + ".tmp"));
  REQUIRE_NOTHROW(onnx::checker::check_model(out));
  onnx::ModelProto read;
  {
    std::ifstream f(out, std::ios::binary);
    REQUIRE(read.ParseFromIstream(&f));
  }
  int64_t parameters = 0;
  for (const auto& t : read.graph().initializer()) {
    if (t.has_raw_data()) parameters += static_cast<int64_t>(t.raw_data().size() / sizeof(float));
  }
  CHECK(parameters == inline_result.parameters);
  // Vocabulary tables are exported unpadded: 65 rows, not tp's padded 66.
  CHECK(dims(read.graph().output(0)).back() == "65");

  OnnxExportOptions small;
  small.external_data_threshold = 4096;
  const OnnxExportResult external = export_onnx(saved.step_dir, out, small);
  CHECK(external.data_path == out + ".data");
  CHECK(fs::file_size(out + ".data") == external.data_bytes);
  CHECK(external.data_bytes >= static_cast<uint64_t>(external.parameters) * sizeof(float));
  // Only the graph, constants and external-data entries stay in the model.
  CHECK(external.model_bytes * 4 < inline_result.model_bytes);
  REQUIRE_NOTHROW(onnx::checker::check_model(out));

  // A smaller export again: the weights are back inside and the stale data file is gone.
  export_onnx(saved.step_dir, out);
  CHECK_FALSE(fs::exists(out + ".data"));

  OnnxExportOptions zero;
  zero.external_data_threshold = 0;
  CHECK_THROWS_MATCHES(export_onnx(saved.step_dir, out, zero), InputError,
                       Message("export --onnx: the external data threshold must be in [1, 2147483647] bytes "
                               "(protobuf's limit), not 0"));
  fs::remove_all(dir);
}

TEST_CASE("onnx: `tessera export` takes exactly one of --safetensors, --onnx and --hf", "[onnx]") {
  const std::string one = "export: give exactly one of --safetensors FILE, --onnx FILE and --hf DIR";
  CHECK_THROWS_MATCHES(run_export({"ckpt", "", "", false, 0, ""}), InputError, Message(one));
  CHECK_THROWS_MATCHES(run_export({"ckpt", "a.safetensors", "a.onnx", false, 0, ""}), InputError, Message(one));
  CHECK_THROWS_MATCHES(run_export({"ckpt", "", "a.onnx", false, 0, "hf_dir"}), InputError, Message(one));
  CHECK_THROWS_MATCHES(run_export({"ckpt", "", "", true, 0, "hf_dir"}), InputError,
                       Message("export: --nanogpt-names applies to --safetensors only"));
  CHECK_THROWS_MATCHES(run_export({"ckpt", "", "a.onnx", true, 0, ""}), InputError,
                       Message("export: --nanogpt-names applies to --safetensors only"));
  CHECK_THROWS_MATCHES(run_export({"ckpt", "a.safetensors", "", false, 4096, ""}), InputError,
                       Message("export: --external-data-threshold applies to --onnx only"));
}
