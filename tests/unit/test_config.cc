// Config loading: the shipped configs, defaults and their resolution, --set overrides, and
// the round trip through config_to_yaml.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "launcher/config_loader.h"
#include "launcher/config_schema.h"
#include "core/error.h"

namespace {

using tessera::Config;
using tessera::parse_config_string;

std::vector<std::string> shipped_configs() {
  std::vector<std::string> paths;
  for (const char* dir : {"/configs", "/configs/tests"}) {
    for (const auto& entry : std::filesystem::directory_iterator(std::string(TESSERA_SOURCE_DIR) + dir)) {
      if (entry.path().extension() == ".yaml") paths.push_back(entry.path().string());
    }
  }
  return paths;
}

// Every field as the schema renders it, so two configs compare field by field.
std::vector<std::string> fields_of(const Config& c) {
  std::vector<std::string> out;
  for (const auto& f : tessera::config::schema()) out.push_back(f.key + " = " + tessera::config::show(c, f.key));
  return out;
}

// The YAML after its leading comment lines (which name the source).
std::string without_header(const std::string& yaml) {
  size_t at = 0;
  while (yaml.compare(at, 1, "#") == 0) at = yaml.find('\n', at) + 1;
  return yaml.substr(at);
}

}  // namespace

TEST_CASE("every shipped config loads and fits one rank", "[config]") {
  const auto paths = shipped_configs();
  REQUIRE(paths.size() >= 4);
  for (const auto& path : paths) {
    INFO(path);
    const Config c = tessera::load_config(path, {});
    CHECK(c.source == path);
    CHECK_NOTHROW(tessera::validate_for_world(c, 1));
  }
}

TEST_CASE("shakespeare_char is nanoGPT's CPU quick-start recipe", "[config]") {
  const Config c = tessera::load_config(std::string(TESSERA_SOURCE_DIR) + "/configs/shakespeare_char.yaml", {});
  CHECK(c.model.arch == "gpt");
  CHECK(c.model.num_layers == 4);
  CHECK(c.model.num_attention_heads == 4);
  CHECK(c.model.hidden_size == 128);
  CHECK(c.model.ffn_hidden_size == 512);
  CHECK(c.model.seq_length == 64);
  CHECK(c.model.vocab == "chars");
  CHECK(c.train.micro_batch_size == 12);
  CHECK(c.train.global_batch_size == 12);
  CHECK(c.train.max_steps == 2000);
  CHECK(c.train.seed == 1337);
  CHECK(c.train.eval_interval == 250);
  CHECK(c.train.eval_iters == 20);
  const auto& o = c.train.optimizer;
  CHECK(o.lr == 1e-3);
  CHECK(o.min_lr == 1e-4);
  CHECK(o.warmup_steps == 100);
  CHECK(o.decay_steps == 2000);
  CHECK(o.beta1 == 0.9);
  CHECK(o.beta2 == 0.99);
  CHECK(o.weight_decay == 0.1);
  CHECK(o.grad_clip == 1.0);
  CHECK(c.data.path == "data/tinyshakespeare.txt");
  CHECK(c.log.interval == 10);
  CHECK(c.log.metrics == "runs/shakespeare_char/metrics.jsonl");
  CHECK(c.log.trace.empty());
  CHECK(c.checkpoint.dir == "runs/shakespeare_char");
}

TEST_CASE("the tiny test configs fit the layouts the multi-rank tests use", "[config]") {
  for (const char* name : {"gpt_tiny", "mlp_tiny"}) {
    const std::string path = std::string(TESSERA_SOURCE_DIR) + "/configs/tests/" + name + ".yaml";
    INFO(path);
    const Config tiny = tessera::load_config(path, {});
    CHECK(tiny.train.max_steps <= 20);
    CHECK(tiny.train.eval_interval == 0);
    for (int world : {1, 2, 4}) CHECK_NOTHROW(tessera::validate_for_world(tiny, world));
    const Config tp2pp2 = tessera::load_config(path, {"parallel.tensor_model_parallel_size=2",
                                                      "parallel.pipeline_model_parallel_size=2"});
    CHECK_NOTHROW(tessera::validate_for_world(tp2pp2, 4));
    CHECK_NOTHROW(tessera::validate_for_world(tp2pp2, 8));
    const Config dp8 = tessera::load_config(path, {"train.micro_batch_size=2"});
    CHECK_NOTHROW(tessera::validate_for_world(dp8, 8));
    CHECK(tessera::resolved_data_parallel_size(tp2pp2, 8) == 2);
  }
}

TEST_CASE("an empty config is all defaults, with ffn_hidden_size resolved", "[config]") {
  const Config c = parse_config_string("", "empty.yaml");
  const Config defaults;
  CHECK(c.source == "empty.yaml");
  CHECK(c.model.arch == defaults.model.arch);
  CHECK(c.model.ffn_hidden_size == 4 * defaults.model.hidden_size);
  CHECK(c.train.optimizer.lr == defaults.train.optimizer.lr);
  CHECK(c.parallel.data_parallel_size == 0);
  CHECK(c.parallel.partition.empty());
  CHECK(parse_config_string("model:\n  hidden_size: 64\n  ffn_hidden_size: 0\n", "x.yaml").model.ffn_hidden_size == 256);
  CHECK(parse_config_string("model:\n  hidden_size: 64\n  ffn_hidden_size: null\n", "x.yaml").model.ffn_hidden_size == 256);
  CHECK(parse_config_string("log:\n", "x.yaml").log.interval == defaults.log.interval);
}

TEST_CASE("the special forms of vocab, data_parallel_size, partition and paths", "[config]") {
  const Config c = parse_config_string(R"(
model: {vocab: 50257, num_layers: 4}
parallel: {data_parallel_size: 2, pipeline_model_parallel_size: 2, partition: [2, 4]}
data: {format: tokens, path: train.bin, val_path: val.bin}
log: {metrics: ~, trace: runs/trace.json}
)", "x.yaml");
  CHECK(c.model.vocab == "50257");
  CHECK(c.parallel.data_parallel_size == 2);
  CHECK(c.parallel.partition == std::vector<int>{2, 4});
  CHECK(c.data.val_path == "val.bin");
  CHECK(c.log.metrics.empty());
  CHECK(c.log.trace == "runs/trace.json");
  // Quoted numbers are numbers; "bytes" and auto forms.
  const Config q = parse_config_string(
      "model: {vocab: bytes, hidden_size: '64'}\nparallel: {data_parallel_size: auto, partition: auto, "
      "sequence_parallel: true}\n", "q.yaml");
  CHECK(q.model.vocab == "bytes");
  CHECK(q.model.hidden_size == 64);
  CHECK(q.parallel.data_parallel_size == 0);
  CHECK(q.parallel.partition.empty());
  CHECK(q.parallel.sequence_parallel);
}

TEST_CASE("overrides from --set apply to the YAML tree before conversion", "[config]") {
  const std::string base = "model:\n  num_layers: 4\ntrain:\n  optimizer:\n    lr: 1.0e-3\n    min_lr: 1.0e-4\n";
  SECTION("numbers, lists and auto") {
    const Config c = parse_config_string(base, "base.yaml",
                                         {"train.optimizer.lr=3e-4", "parallel.pipeline_model_parallel_size=2",
                                          "parallel.partition=[3,3]", "parallel.data_parallel_size=auto",
                                          "train.optimizer.betas=[0.8, 0.95]"});
    CHECK(c.train.optimizer.lr == 3e-4);
    CHECK(c.train.optimizer.min_lr == 1e-4);  // the rest of the section stays
    CHECK(c.parallel.pipeline_model_parallel_size == 2);
    CHECK(c.parallel.partition == std::vector<int>{3, 3});
    CHECK(c.parallel.data_parallel_size == 0);
    CHECK(c.train.optimizer.beta1 == 0.8);
    CHECK(c.train.optimizer.beta2 == 0.95);
  }
  SECTION("an empty value is null; a section absent from the file is created") {
    const Config c = parse_config_string(base + "log:\n  trace: runs/t.json\n", "base.yaml",
                                         {"log.trace=", "checkpoint.dir=runs/x", "checkpoint.interval=5"});
    CHECK(c.log.trace.empty());
    CHECK(c.checkpoint.dir == "runs/x");
    CHECK(c.checkpoint.interval == 5);
  }
  SECTION("a mapping merges into its section; the last override wins") {
    const Config c = parse_config_string(base, "base.yaml",
                                         {"train.optimizer={lr: 0.01, warmup_steps: 5}", "train.optimizer.lr=0.02"});
    CHECK(c.train.optimizer.lr == 0.02);
    CHECK(c.train.optimizer.warmup_steps == 5);
    CHECK(c.train.optimizer.min_lr == 1e-4);
  }
  SECTION("load_config takes overrides too") {
    const Config c = tessera::load_config(std::string(TESSERA_SOURCE_DIR) + "/configs/tests/gpt_tiny.yaml",
                                          {"train.max_steps=3", "data.path=tests/fixtures/x.txt"});
    CHECK(c.train.max_steps == 3);
    CHECK(c.data.path == "tests/fixtures/x.txt");
  }
}

TEST_CASE("config_to_yaml round-trips through parse_config_string", "[config]") {
  std::vector<Config> configs;
  for (const auto& path : shipped_configs()) configs.push_back(tessera::load_config(path, {}));
  configs.push_back(parse_config_string(R"(
model: {arch: mlp, num_layers: 2, hidden_size: 48, seq_length: 8, vocab: 300, activation: relu,
        input_size: 24, output_size: 10, init_std: 0.01}
parallel: {tensor_model_parallel_size: 2, pipeline_model_parallel_size: 2, data_parallel_size: 2,
           schedule: interleaved, virtual_stages: 2, partition: [1, 1, 1, 1], recompute: selective,
           sequence_parallel: true, zero_stage: 1, bucket_mb: 2.5, timeout_s: 60}
train: {micro_batch_size: 3, global_batch_size: 24, max_steps: 7, seed: 18446744073709551615,
        precision: bf16, threads: 3, eval_interval: 2, eval_iters: 1, peak_tflops: 1.5e2,
        optimizer: {lr: 3.0e-4, min_lr: 0, warmup_steps: 1, decay_steps: 5, betas: [0.0, 0.999],
                    eps: 1.0e-6, weight_decay: 0, grad_clip: -1}}
data: {path: 'null', format: tokens, val_fraction: 0, val_path: 'a: b #c'}
checkpoint: {dir: "yes", interval: 3, keep: 1, resume: auto}
log: {interval: 1, metrics: '123', trace: "-x", level: debug}
)", "every_field.yaml"));
  Config code;  // built in code: no source, ffn_hidden_size left at 0
  code.model.ffn_hidden_size = 0;
  configs.push_back(code);
  for (const auto& c : configs) {
    INFO(c.source);
    const std::string yaml = tessera::config_to_yaml(c);
    INFO(yaml);
    const Config back = parse_config_string(yaml, "dumped.yaml");
    Config resolved = c;  // the loader fills in ffn_hidden_size 0
    if (resolved.model.ffn_hidden_size == 0) resolved.model.ffn_hidden_size = 4 * resolved.model.hidden_size;
    CHECK(fields_of(back) == fields_of(resolved));
    CHECK(without_header(tessera::config_to_yaml(back)) == without_header(tessera::config_to_yaml(resolved)));
  }
  const Config every = configs[configs.size() - 2];
  const Config back = parse_config_string(tessera::config_to_yaml(every), "dumped.yaml");
  CHECK(back.train.seed == 18446744073709551615ull);
  CHECK(back.data.path == "null");
  CHECK(back.data.val_path == "a: b #c");
  CHECK(back.checkpoint.dir == "yes");
  CHECK(back.log.metrics == "123");
  CHECK(back.model.init_std == 0.01f);
  CHECK(back.train.optimizer.beta2 == 0.999);
}

TEST_CASE("config_to_yaml writes every section in order", "[config]") {
  const std::string yaml = tessera::config_to_yaml(parse_config_string("", "defaults.yaml"));
  CHECK(yaml.rfind("# Tessera config, resolved from defaults.yaml.", 0) == 0);
  CHECK(yaml.find("model:\n  arch: gpt\n") != std::string::npos);
  CHECK(yaml.find("  data_parallel_size: auto\n") != std::string::npos);
  CHECK(yaml.find("  partition: auto\n") != std::string::npos);
  CHECK(yaml.find("  optimizer:\n    name: adamw\n") != std::string::npos);
  CHECK(yaml.find("    betas: [0.9, 0.99]\n") != std::string::npos);
  CHECK(yaml.find("  trace: null\n") != std::string::npos);
  CHECK(yaml.find("model:") < yaml.find("parallel:"));
  CHECK(yaml.find("parallel:") < yaml.find("train:"));
  CHECK(yaml.find("train:") < yaml.find("data:"));
  CHECK(yaml.find("data:") < yaml.find("checkpoint:"));
  CHECK(yaml.find("checkpoint:") < yaml.find("log:"));
}
