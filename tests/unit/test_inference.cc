// Inference engine tests: the full forward equals the training model's logits on the same
// checkpoint, under any saved layout; KV-cache decode equals the full forward at every
// position, one token at a time, in chunks, and for a batch of sequences of different
// lengths in one call; pruned attention widths; loading errors.
#include <catch2/catch.hpp>
#include <filesystem>

#include "runtime/compute/compute.h"
#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/inference/decode.h"
#include "runtime/inference/inference_model.h"
#include "runtime/model/head_layer.h"
#include "runtime/model/model.h"
#include "tests/unit/checkpoint_test_util.h"
#include "tests/unit/test_inference_util.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using namespace tessera;
using namespace tessera::inference_test;
using tessera::ckpt_test::TempDir;

namespace {

// Row `row` of the full forward's logits.
const float* row_of(const Tensor& logits, int64_t row) { return logits.f32() + row * logits.dim(1); }

}  // namespace

TEST_CASE("inference: forward equals the training model's logits on the same checkpoint", "[inference]") {
  TempDir dir;
  const std::string step_dir = save_tiny_checkpoint(dir.path, 1, 1);
  const InferenceModel model = InferenceModel::load(dir.path);
  CHECK(model.vocab_size() == 65);
  CHECK(model.context_length() == 16);
  CHECK(model.vocabulary() == test_vocabulary());

  // The training model, loaded from the checkpoint by the training code path.
  const ModelConfig config = tiny_gpt_config();
  const LayerGraph graph = build_layer_graph(config, 65, 2);
  Model trained(config, graph, TpGroup{nullptr, 0, 1}, 123);
  CheckpointState state;
  state.params = trained.parameters();
  load_checkpoint(step_dir, state, 0, 1);
  const std::unique_ptr<Compute> compute = make_cpu_compute(Precision::FP32);
  MicrobatchContext ctx;
  ctx.compute = compute.get();
  ctx.tokens = random_tokens(2, 16, 65, 1);
  ctx.targets = random_tokens(2, 16, 65, 2);
  ctx.training = false;
  trained.forward(Tensor(), ctx);
  const Tensor& want = dynamic_cast<HeadLayer&>(*trained.layers().back()).last_logits();

  const Tensor got = model.forward(ctx.tokens);
  REQUIRE(got.shape() == Shape{32, 65});
  REQUIRE(want.shape() == got.shape());
  CHECK(relative_error(got.f32(), want.f32(), got.numel()) <= 1e-6);
}

TEST_CASE("inference: a tp=2, pp=2 checkpoint gives the 1-rank checkpoint's logits", "[inference]") {
  TempDir one, four;
  save_tiny_checkpoint(one.path, 1, 1);
  save_tiny_checkpoint(four.path, 2, 2);
  const Tensor tokens = random_tokens(3, 11, 65, 3);
  const Tensor want = InferenceModel::load(one.path).forward(tokens);
  const Tensor got = InferenceModel::load(four.path).forward(tokens);
  CHECK(relative_error(got.f32(), want.f32(), got.numel()) == 0);
}

TEST_CASE("inference: KV-cache logits equal the full forward at every position", "[inference]") {
  TempDir dir;
  save_tiny_checkpoint(dir.path, 1, 1);
  const InferenceModel model = InferenceModel::load(dir.path);
  const Tensor tokens = random_tokens(1, 16, 65, 4);
  const Tensor full = model.forward(tokens);
  const int64_t V = model.vocab_size();

  SECTION("one token at a time") {
    KvCache cache(model);
    for (int64_t t = 0; t < 16; ++t) {
      const Tensor logits = decode(model, {&cache}, {{tokens.i32()[t]}});
      INFO("position " << t);
      REQUIRE(logits.shape() == Shape{1, V});
      CHECK(cache.length() == t + 1);
      CHECK(relative_error(logits.f32(), row_of(full, t), V) <= 1e-5);
    }
    CHECK_THROWS_WITH(decode(model, {&cache}, {{1}}), Contains("exceed the context of 16"));
    CHECK(cache.length() == 16);
  }
  SECTION("a prefill of 5, then chunks of 4, 1 and 6") {
    KvCache cache(model);
    int64_t at = 0;
    for (const int64_t n : {5, 4, 1, 6}) {
      const std::vector<int32_t> chunk(tokens.i32() + at, tokens.i32() + at + n);
      at += n;
      const Tensor logits = decode(model, {&cache}, {chunk});
      INFO("chunk ending at " << at);
      CHECK(relative_error(logits.f32(), row_of(full, at - 1), V) <= 1e-5);
    }
  }
  SECTION("clear starts the sequence over") {
    KvCache cache(model);
    decode(model, {&cache}, {{7, 8, 9}});
    cache.clear();
    CHECK(cache.length() == 0);
    const Tensor logits = decode(model, {&cache}, {{tokens.i32()[0], tokens.i32()[1]}});
    CHECK(relative_error(logits.f32(), row_of(full, 1), V) <= 1e-5);
  }
}

TEST_CASE("inference: one decode call over sequences of different lengths", "[inference]") {
  TempDir dir;
  save_tiny_checkpoint(dir.path, 1, 1);
  const InferenceModel model = InferenceModel::load(dir.path);
  const int64_t V = model.vocab_size();
  // Sequence i: `past[i]` tokens already cached, then `fresh[i]` new ones in one shared call.
  const std::vector<int64_t> past = {5, 0, 12, 1}, fresh = {1, 3, 4, 2};
  std::vector<Tensor> sequences;
  std::vector<std::unique_ptr<KvCache>> owned;
  std::vector<KvCache*> caches;
  std::vector<std::vector<int32_t>> news;
  for (size_t i = 0; i < past.size(); ++i) {
    sequences.push_back(random_tokens(1, past[i] + fresh[i], V, 10 + i));
    const int32_t* ids = sequences.back().i32();
    owned.push_back(std::make_unique<KvCache>(model));
    if (past[i] > 0) decode(model, {owned.back().get()}, {{ids, ids + past[i]}});
    caches.push_back(owned.back().get());
    news.emplace_back(ids + past[i], ids + past[i] + fresh[i]);
  }
  const Tensor logits = decode(model, caches, news);
  REQUIRE(logits.shape() == Shape{4, V});
  for (size_t i = 0; i < past.size(); ++i) {
    INFO("sequence " << i);
    CHECK(caches[i]->length() == past[i] + fresh[i]);
    const Tensor full = model.forward(sequences[i]);
    CHECK(relative_error(logits.f32() + i * V, row_of(full, past[i] + fresh[i] - 1), V) <= 1e-5);
  }
}

TEST_CASE("inference: pruned attention (heads * head_dim != hidden) decodes like the full forward",
          "[inference]") {
  ModelConfig config = tiny_gpt_config();
  config.num_layers = 1;
  config.num_attention_heads = 3;
  config.head_dim = 6;  // attention width 18, hidden 32
  config.ffn_hidden_size = 40;
  const int64_t C = 32, A = 18, F = 40, V = 65, T = 16;
  std::map<std::string, Tensor> tensors;
  uint64_t seed = 1;
  auto add = [&](const std::string& name, Shape shape, float offset) {
    Tensor t = Tensor::empty(shape);
    const Tensor r = random_tokens(1, t.numel(), 1000, seed++);
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = offset + (r.i32()[i] - 500) / 2000.0f;
    tensors[name] = t;
  };
  add("wte.weight", {V, C}, 0);
  add("wpe.weight", {T, C}, 0);
  add("h.0.ln_1.weight", {C}, 1);
  add("h.0.ln_1.bias", {C}, 0);
  add("h.0.attn.c_attn.weight", {3 * A, C}, 0);
  add("h.0.attn.c_attn.bias", {3 * A}, 0);
  add("h.0.attn.c_proj.weight", {C, A}, 0);
  add("h.0.attn.c_proj.bias", {C}, 0);
  add("h.0.ln_2.weight", {C}, 1);
  add("h.0.ln_2.bias", {C}, 0);
  add("h.0.mlp.c_fc.weight", {F, C}, 0);
  add("h.0.mlp.c_fc.bias", {F}, 0);
  add("h.0.mlp.c_proj.weight", {C, F}, 0);
  add("h.0.mlp.c_proj.bias", {C}, 0);
  add("ln_f.weight", {C}, 1);
  add("ln_f.bias", {C}, 0);
  add("lm_head.weight", {V, C}, 0);
  const InferenceModel model(config, test_vocabulary(), tensors);
  CHECK(model.attention_width() == A);
  const Tensor tokens = random_tokens(1, T, V, 7);
  const Tensor full = model.forward(tokens);
  KvCache cache(model);
  for (int64_t t = 0; t < T; ++t) {
    const Tensor logits = decode(model, {&cache}, {{tokens.i32()[t]}});
    INFO("position " << t);
    CHECK(relative_error(logits.f32(), row_of(full, t), V) <= 1e-5);
  }

  std::map<std::string, Tensor> wrong = tensors;
  wrong["h.0.attn.c_proj.weight"] = Tensor::zeros({C, C});
  CHECK_THROWS_WITH(InferenceModel(config, test_vocabulary(), wrong),
                    Contains("'h.0.attn.c_proj.weight' has shape [32, 32], the config needs [32, 18]"));
  tensors.erase("ln_f.bias");
  CHECK_THROWS_WITH(InferenceModel(config, test_vocabulary(), tensors), Contains("'ln_f.bias' is missing"));
}

TEST_CASE("inference: loading refuses what is not a GPT checkpoint", "[inference]") {
  TempDir dir;
  CHECK_THROWS_AS(InferenceModel::load(dir.path), InputError);
  CHECK_THROWS_WITH(InferenceModel::load(dir.path), Contains("not a checkpoint"));
  ckpt_test::SimRun mlp = ckpt_test::build_run("mlp", 1, 1, false);
  ckpt_test::save_run(mlp, dir.path, 3, 0, false);
  CHECK_THROWS_WITH(InferenceModel::load(dir.path), Contains("generation needs a gpt model"));
}

TEST_CASE("inference: decode returns every new token's logits for the sequences that ask", "[inference]") {
  TempDir dir;
  save_tiny_checkpoint(dir.path, 1, 1);
  const InferenceModel model = InferenceModel::load(dir.path);
  const int64_t V = model.vocab_size();
  const Tensor a = random_tokens(1, 6, V, 3), b = random_tokens(1, 4, V, 4);
  KvCache ca(model), cb(model);
  const Tensor logits = decode(model, {&ca, &cb}, {{a.i32(), a.i32() + 6}, {b.i32(), b.i32() + 4}}, {true, false});
  REQUIRE(logits.shape() == Shape{6 + 1, V});
  const Tensor full_a = model.forward(a), full_b = model.forward(b);
  for (int64_t t = 0; t < 6; ++t) CHECK(relative_error(logits.f32() + t * V, row_of(full_a, t), V) <= 1e-5);
  CHECK(relative_error(logits.f32() + 6 * V, row_of(full_b, 3), V) <= 1e-5);
}
