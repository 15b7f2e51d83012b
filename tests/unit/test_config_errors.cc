// Bad configs: each must fail with exactly one line naming the file, the key, the value and
// the rule. The cases start from the defaults, so each YAML holds only what is wrong.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "launcher/config_loader.h"
#include "core/error.h"

namespace {

// The message of the InputError that loading throws, or a note that something else happened.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    tessera::parse_config_string(yaml, "bad.yaml", overrides);
  } catch (const tessera::InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not an InputError: ") + e.what();
  }
  return "no error";
}

std::string world_error_of(const tessera::Config& c, int world) {
  try {
    tessera::validate_for_world(c, world);
  } catch (const tessera::InputError& e) {
    return e.what();
  }
  return "no error";
}

struct BadConfig {
  const char* what;
  std::string yaml;
  std::vector<std::string> overrides;
  std::string message;
};

}  // namespace

TEST_CASE("bad configs fail with one exact line", "[config]") {
  const std::vector<BadConfig> cases = {
      {"unknown key, nested", "model:\n  hiden_size: 32\n", {},
       "bad.yaml: unknown key 'model.hiden_size' (did you mean 'model.hidden_size'?)"},
      {"unknown key, top level", "trian:\n  max_steps: 10\n", {},
       "bad.yaml: unknown key 'trian' (did you mean 'train'?)"},
      {"unknown key, two levels down", "train:\n  optimizer:\n    lrr: 0.1\n", {},
       "bad.yaml: unknown key 'train.optimizer.lrr' (did you mean 'train.optimizer.lr'?)"},
      {"a key in the wrong section", "train:\n  lr: 0.1\n", {},
       "bad.yaml: unknown key 'train.lr' (did you mean 'train.optimizer.lr'?)"},
      {"a nanoGPT name", "model:\n  n_embd: 64\n", {},
       "bad.yaml: unknown key 'model.n_embd' (did you mean 'model.hidden_size'?)"},
      {"unknown key, nothing close", "model:\n  dropout: 0.1\n", {},
       "bad.yaml: unknown key 'model.dropout' (known keys in model: arch, num_layers, hidden_size, "
       "num_attention_heads, ffn_hidden_size, head_dim, num_query_groups, rotary_base, normalization, norm_epsilon, "
       "untie_embeddings_and_output_weights, seq_length, vocab, activation, input_size, output_size, init_std)"},
      {"string for int", "train:\n  micro_batch_size: twelve\n", {},
       "bad.yaml: train.micro_batch_size = 'twelve': must be a positive integer"},
      {"negative batch", "train:\n  micro_batch_size: -3\n", {},
       "bad.yaml: train.micro_batch_size = -3: must be a positive integer"},
      {"zero batch", "train:\n  global_batch_size: 0\n", {},
       "bad.yaml: train.global_batch_size = 0: must be a positive integer"},
      {"float for int", "model:\n  num_layers: 2.5\n", {},
       "bad.yaml: model.num_layers = 2.5: must be a positive integer"},
      {"list for scalar", "model:\n  hidden_size: [64]\n", {},
       "bad.yaml: model.hidden_size = [64]: must be a positive integer"},
      {"null for a required value", "train:\n  micro_batch_size:\n", {},
       "bad.yaml: train.micro_batch_size = null: must be a positive integer"},
      {"integer too large", "train:\n  max_steps: 99999999999\n", {},
       "bad.yaml: train.max_steps = 99999999999: must be a positive integer"},
      {"negative seed", "train:\n  seed: -1\n", {}, "bad.yaml: train.seed = -1: must be a non-negative integer"},
      {"bad enum", "parallel:\n  schedule: zigzag\n", {},
       "bad.yaml: parallel.schedule = 'zigzag': must be one of gpipe, 1f1b, interleaved"},
      {"bad precision", "train:\n  precision: fp8\n", {},
       "bad.yaml: train.precision = 'fp8': must be one of fp32, bf16, fp16"},
      {"not a boolean", "parallel:\n  sequence_parallel: maybe\n", {},
       "bad.yaml: parallel.sequence_parallel = 'maybe': must be true or false"},
      {"data_parallel_size neither a size nor auto", "parallel:\n  data_parallel_size: many\n", {},
       "bad.yaml: parallel.data_parallel_size = 'many': must be a positive integer or auto"},
      {"vocab words", "model:\n  vocab: words\n", {},
       "bad.yaml: model.vocab = 'words': must be chars, bytes, or a positive integer"},
      {"section not a mapping", "model: 5\n", {}, "bad.yaml: model = 5: must be a mapping of model keys"},
      {"top level not a mapping", "- a\n- b\n", {},
       "bad.yaml: the top level must be a mapping of sections (model, parallel, train, data, "
       "checkpoint, log), not ['a', 'b']"},
      {"heads do not divide hidden", "model:\n  hidden_size: 130\n  ffn_hidden_size: 520\n", {},
       "bad.yaml: model.hidden_size = 130: must be divisible by model.num_attention_heads = 4"},
      {"min_lr above lr", "train:\n  optimizer:\n    lr: 1.0e-4\n    min_lr: 1.0e-3\n", {},
       "bad.yaml: train.optimizer.min_lr = 0.001: must be <= train.optimizer.lr = 0.0001"},
      {"global batch not a multiple of micro batch", "train:\n  micro_batch_size: 12\n  global_batch_size: 20\n", {},
       "bad.yaml: train.global_batch_size = 20: must be divisible by train.micro_batch_size = 12"},
      {"eval without iterations", "train:\n  eval_iters: 0\n", {},
       "bad.yaml: train.eval_iters = 0: must be positive when train.eval_interval = 250 (0 disables "
       "validation)"},
      {"betas of the wrong length", "train:\n  optimizer:\n    betas: [0.9]\n", {},
       "bad.yaml: train.optimizer.betas = [0.9]: must be a list of two numbers [beta1, beta2]"},
      {"betas out of [0, 1)", "train:\n  optimizer:\n    betas: [0.9, 1.0]\n", {},
       "bad.yaml: train.optimizer.betas = [0.9, 1.0]: must be two numbers in [0, 1)"},
      {"partition with a zero", "parallel:\n  pipeline_model_parallel_size: 2\n  partition: [6, 0]\n", {},
       "bad.yaml: parallel.partition = [6, 0]: must be auto or a list of positive integers"},
      {"val_fraction out of range", "data:\n  val_fraction: 0.7\n", {},
       "bad.yaml: data.val_fraction = 0.7: must be a number in [0, 0.5]"},
      {"token files need a vocabulary size", "data:\n  format: tokens\n  path: train.bin\n", {},
       "bad.yaml: model.vocab = 'chars': must be an integer vocabulary size with data.format = tokens"},
      {"token ids beyond uint16", "data: {format: tokens, path: x.bin}\nmodel: {vocab: 70000}\n", {},
       "bad.yaml: model.vocab = 70000: must be at most 65536 with data.format = tokens (token files hold "
       "uint16 ids)"},
      {"recursive alias", "a: &x [*x]\n", {}, "bad.yaml: 'a' nests more than 32 levels deep (a recursive alias?)"},
      {"interleaved without virtual stages", "parallel:\n  schedule: interleaved\n", {},
       "bad.yaml: parallel.schedule = 'interleaved': needs parallel.virtual_stages > 1"},
      {"interleaved without pipeline stages", "parallel:\n  schedule: interleaved\n  virtual_stages: 2\n", {},
       "bad.yaml: parallel.schedule = 'interleaved': needs parallel.pipeline_model_parallel_size > 1 (use 1f1b)"},
      {"checkpoints need a directory", "checkpoint:\n  interval: 100\n", {},
       "bad.yaml: checkpoint.interval = 100: must be 0 when checkpoint.dir is null"},
      {"heads not divisible by tp, at load time", "parallel:\n  tensor_model_parallel_size: 3\n", {},
       "bad.yaml: model.num_attention_heads = 4: must be divisible by parallel.tensor_model_parallel_size = 3"},
      {"duplicate key", "model:\n  hidden_size: 64\n  hidden_size: 32\n", {},
       "bad.yaml:3:3: duplicate key 'model.hidden_size'"},
      {"syntax error", "model:\n  hidden_size: [64\ntrain: {}\n", {},
       "bad.yaml:3:6: end of sequence flow not found"},
      {"syntax error, bad indentation", "model:\n  hidden_size: 64\n   seq_length: 16\n", {},
       "bad.yaml:3:14: illegal map value"},
      {"override without =", "", {"train.optimizer.lr"},
       "bad.yaml: --set 'train.optimizer.lr': expected dotted.key=value, e.g. train.optimizer.lr=3e-4"},
      {"override with a bad key", "", {"train..lr=1"},
       "bad.yaml: --set 'train..lr=1': 'train..lr' is not a dotted key (names of letters, digits and _ "
       "joined by dots)"},
      {"override with a bad value", "", {"parallel.partition=[3,2"},
       "bad.yaml: --set 'parallel.partition=[3,2': end of sequence flow not found"},
      {"override of an unknown key", "", {"train.optimizer.lrr=3e-4"},
       "bad.yaml: --set train.optimizer.lrr=3e-4: unknown key 'train.optimizer.lrr' (did you mean "
       "'train.optimizer.lr'?)"},
      {"override under an unknown section", "", {"modle.hidden_size=64"},
       "bad.yaml: --set modle.hidden_size=64: unknown key 'modle' (did you mean 'model'?)"},
      {"override through a value", "", {"model.hidden_size.x=3"},
       "bad.yaml: --set model.hidden_size.x=3: unknown key 'model.hidden_size.x' (model.hidden_size is a "
       "value, not a section)"},
      {"override with a Megatron short name", "", {"model.tp=2"},
       "bad.yaml: --set model.tp=2: unknown key 'model.tp' (did you mean "
       "'parallel.tensor_model_parallel_size'?)"},
      {"override with a value that breaks the rule", "", {"train.micro_batch_size=-1"},
       "bad.yaml: --set train.micro_batch_size = -1: must be a positive integer"},
      {"override that breaks a rule between fields", "", {"train.optimizer.min_lr=0.01"},
       "bad.yaml: --set train.optimizer.min_lr = 0.01: must be <= train.optimizer.lr = 0.001"},
  };
  for (const auto& bad : cases) {
    INFO(bad.what);
    REQUIRE(error_of(bad.yaml, bad.overrides) == bad.message);
  }
}

TEST_CASE("a missing config file is one clear line", "[config]") {
  try {
    tessera::load_config("configs/no_such_config.yaml", {});
    FAIL("no error");
  } catch (const tessera::InputError& e) {
    REQUIRE(std::string(e.what()) == "configs/no_such_config.yaml: config file not found");
  }
  try {
    tessera::load_config(TESSERA_SOURCE_DIR "/configs", {});
    FAIL("no error");
  } catch (const tessera::InputError& e) {
    REQUIRE(std::string(e.what()) == TESSERA_SOURCE_DIR "/configs: is a directory, not a config file");
  }
}

TEST_CASE("validate_for_world checks the config against the world size", "[config]") {
  const auto parse = [](const std::string& yaml) { return tessera::parse_config_string(yaml, "bad.yaml"); };
  // Defaults: gpt, 4 layers (6 in the layer graph), 4 heads, hidden 128, micro = global = 12.
  const auto tp2pp2 = parse("parallel: {tensor_model_parallel_size: 2, pipeline_model_parallel_size: 2}\n"
                            "train: {micro_batch_size: 4, global_batch_size: 16}\n");
  CHECK(world_error_of(tp2pp2, 4) == "no error");
  CHECK(world_error_of(tp2pp2, 8) == "no error");
  REQUIRE(world_error_of(tp2pp2, 6) ==
          "bad.yaml: world size 6 is not divisible by tensor_model_parallel_size * "
          "pipeline_model_parallel_size = 4");
  REQUIRE(world_error_of(tp2pp2, 12) ==
          "bad.yaml: train.global_batch_size = 16: must be divisible by micro_batch_size * "
          "data_parallel_size = 4 * 3 = 12 (data_parallel_size auto = world size 12 / 4)");
  REQUIRE(world_error_of(parse(""), 2) ==
          "bad.yaml: train.global_batch_size = 12: must be divisible by micro_batch_size * "
          "data_parallel_size = 12 * 2 = 24 (data_parallel_size auto = world size 2 / 1)");
  REQUIRE(world_error_of(parse("parallel: {data_parallel_size: 2}\ntrain: {micro_batch_size: 3}\n"), 4) ==
          "bad.yaml: parallel.data_parallel_size = 2: must be world size / (tensor_model_parallel_size * "
          "pipeline_model_parallel_size) = 4 / 1 = 4, or auto");
  REQUIRE(world_error_of(parse("parallel: {pipeline_model_parallel_size: 2, schedule: interleaved, "
                               "virtual_stages: 2}\ntrain: {micro_batch_size: 4}\n"),
                         2) ==
          "bad.yaml: parallel.schedule = 'interleaved': needs the number of microbatches (global_batch_size / "
          "(micro_batch_size * data_parallel_size) = 3) to be divisible by pipeline_model_parallel_size = 2");
  REQUIRE(world_error_of(parse(""), 0) == "bad.yaml: world size 0 must be positive");
}

TEST_CASE("validate_for_world checks configs built in code", "[config]") {
  tessera::Config c;  // no source: messages say "config"
  c.parallel.tensor_model_parallel_size = 8;
  REQUIRE(world_error_of(c, 8) ==
          "config: model.num_attention_heads = 4: must be divisible by parallel.tensor_model_parallel_size = 8");
  c = tessera::Config();
  c.model.num_attention_heads = 2;
  c.model.hidden_size = 96;
  c.parallel.tensor_model_parallel_size = 2;
  c.model.ffn_hidden_size = 101;
  c.source = "code.yaml";
  REQUIRE(world_error_of(c, 2) ==
          "code.yaml: model.ffn_hidden_size = 101: must be divisible by parallel.tensor_model_parallel_size = 2");
  c = tessera::Config();
  c.parallel.pipeline_model_parallel_size = 8;
  REQUIRE(world_error_of(c, 8) ==
          "config: parallel.pipeline_model_parallel_size = 8: pipeline_model_parallel_size * virtual_stages = 8 "
          "stages is more than the model's 6 layers (model.num_layers = 4 plus embedding and head)");
  c = tessera::Config();
  c.parallel.pipeline_model_parallel_size = 2;
  c.parallel.partition = {3, 2};
  REQUIRE(world_error_of(c, 2) ==
          "config: parallel.partition = [3, 2]: must sum to the model's 6 layers (model.num_layers = 4 plus "
          "embedding and head), not 5");
  c.parallel.partition = {6};
  REQUIRE(world_error_of(c, 2) ==
          "config: parallel.partition = [6]: must have pipeline_model_parallel_size * virtual_stages = 2 "
          "entries, not 1");
  c.parallel.partition = {3, 3};
  CHECK(world_error_of(c, 2) == "no error");
  c.model.vocab = "words";
  REQUIRE(world_error_of(c, 2) == "config: model.vocab = 'words': must be chars, bytes, or a positive integer");
}

TEST_CASE("malformed YAML never escapes as a yaml-cpp exception", "[config]") {
  for (const char* text : {"{", "[[[", "a: *nowhere", "a: &x [*x]", "\t- x", "key: 'open", "? [a, b]\n: c",
                           "a: 1\n---\nb: 2\n", "\x01\x02\xff", "model: {hidden_size: 1e999}"}) {
    INFO(text);
    const std::string message = error_of(text);
    CHECK(message.rfind("bad.yaml", 0) == 0);
    CHECK(message.find('\n') == std::string::npos);
  }
}
