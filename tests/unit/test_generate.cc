// Sampling and generation tests: seeds reproduce and differ, greedy is the argmax, top_k
// limits the choice, and generate() with the KV cache follows the full-recompute
// generation token for token, also past the context length where the cache is rebuilt.
#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <set>

#include "runtime/inference/generate.h"
#include "tests/unit/checkpoint_test_util.h"
#include "tests/unit/test_inference_util.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using namespace tessera;
using namespace tessera::inference_test;
using tessera::ckpt_test::TempDir;

namespace {

std::vector<float> spread_logits() {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>((i * 37) % 50) / 10.0f;
  return logits;  // the largest, 4.9, at index 27 (27 * 37 % 50 == 49)
}

std::vector<int32_t> draw(uint64_t seed, const SamplingOptions& options, int n) {
  const std::vector<float> logits = spread_logits();
  Sampler sampler(seed);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(sampler.next(logits.data(), 50, options));
  return out;
}

}  // namespace

TEST_CASE("sampler: the same seed draws the same tokens, another seed others", "[generate]") {
  const SamplingOptions options{1.0f, 0};
  const auto a = draw(1, options, 200);
  CHECK(a == draw(1, options, 200));
  CHECK(a != draw(2, options, 200));
  // Temperature 1 over 50 tokens: many different ones.
  CHECK(std::set<int32_t>(a.begin(), a.end()).size() > 20);
}

TEST_CASE("sampler: greedy and top_k = 1 pick the argmax, top_k limits the choice", "[generate]") {
  const std::vector<float> logits = spread_logits();
  Sampler sampler(3);
  CHECK(sampler.next(logits.data(), 50, {0.0f, 0}) == 27);
  CHECK(sampler.next(logits.data(), 50, {1.5f, 1}) == 27);
  // Ties go to the lower id.
  const std::vector<float> tied = {0.5f, 2.0f, -1.0f, 2.0f};
  CHECK(sampler.next(tied.data(), 4, {0.0f, 0}) == 1);
  CHECK(sampler.next(tied.data(), 4, {1.0f, 1}) == 1);
  // top_k = 3 keeps the tokens of logits 4.9, 4.8 and 4.7; with temperature 2 each is drawn.
  std::vector<int32_t> top3;
  for (int32_t i = 0; i < 50; ++i) {
    if (logits[i] >= 4.7f - 1e-6f) top3.push_back(i);
  }
  REQUIRE(top3.size() == 3);
  const auto drawn = draw(5, {2.0f, 3}, 300);
  const std::set<int32_t> seen(drawn.begin(), drawn.end());
  CHECK(seen == std::set<int32_t>(top3.begin(), top3.end()));
  // A low temperature all but always takes the top token.
  const auto cold = draw(6, {0.01f, 0}, 100);
  CHECK(std::count(cold.begin(), cold.end(), 27) == 100);
  CHECK_THROWS_WITH(sampler.next(logits.data(), 50, {-1.0f, 0}), Contains("temperature -1 must be"));
}

TEST_CASE("generate: seeds, greedy, and the cache against full recompute", "[generate]") {
  TempDir dir;
  save_tiny_checkpoint(dir.path, 1, 1);
  const InferenceModel model = InferenceModel::load(dir.path);
  const std::vector<int32_t> prompt = model.vocabulary().encode("ROMEO:");
  const SamplingOptions sampled{1.0f, 0}, greedy{0.0f, 0};

  const GenerationResult a = generate(model, prompt, 8, sampled, 1);
  REQUIRE(a.tokens.size() == prompt.size() + 8);
  CHECK(std::equal(prompt.begin(), prompt.end(), a.tokens.begin()));
  CHECK(a.tokens == generate(model, prompt, 8, sampled, 1).tokens);
  CHECK(a.tokens != generate(model, prompt, 8, sampled, 2).tokens);

  // Greedy: each generated token is the argmax of the full forward over the tokens before it.
  const GenerationResult g = generate(model, prompt, 10, greedy, 1);
  for (size_t t = prompt.size(); t < g.tokens.size(); ++t) {
    Tensor tokens = Tensor::empty({1, static_cast<int64_t>(t)}, DType::I32);
    std::copy_n(g.tokens.begin(), t, tokens.i32());
    const Tensor logits = model.forward(tokens);
    const float* last = logits.f32() + (t - 1) * model.vocab_size();
    INFO("token " << t);
    CHECK(g.tokens[t] == std::max_element(last, last + model.vocab_size()) - last);
  }
  CHECK(generate(model, prompt, 10, {0.7f, 1}, 9).tokens == g.tokens);

  // Within the context the cache changes nothing: sampling follows the recomputing baseline.
  CHECK(generate_uncached(model, prompt, 10, sampled, 4).tokens == generate(model, prompt, 10, sampled, 4).tokens);
}

TEST_CASE("generate: past the context the cache is rebuilt from the newest half", "[generate]") {
  TempDir dir;
  save_tiny_checkpoint(dir.path, 1, 1);
  const InferenceModel model = InferenceModel::load(dir.path);
  // A prompt longer than the context of 16 is cut to its last 16 tokens.
  std::string text;
  for (int i = 0; i < 20; ++i) text += static_cast<char>('A' + i);
  const std::vector<int32_t> prompt = model.vocabulary().encode(text);
  const GenerationResult r = generate(model, prompt, 40, {0.0f, 0}, 1);
  REQUIRE(r.tokens.size() == 60);
  // Replaying the documented window: the first token comes from the last 16 prompt tokens;
  // then the full cache restarts from the last 8 tokens and grows by one per step up to 16
  // again. Each token is the greedy pick of the full forward over exactly that window.
  int64_t held = 16;
  for (size_t t = prompt.size(); t < r.tokens.size(); ++t) {
    Tensor window = Tensor::empty({1, held}, DType::I32);
    std::copy(r.tokens.begin() + t - held, r.tokens.begin() + t, window.i32());
    const Tensor logits = model.forward(window);
    const float* last = logits.f32() + (held - 1) * model.vocab_size();
    INFO("token " << t << " over a window of " << held);
    CHECK(r.tokens[t] == std::max_element(last, last + model.vocab_size()) - last);
    held = held == 16 ? 8 : held + 1;
  }
  CHECK_THROWS_WITH(generate(model, {}, 4, {}, 1), Contains("the prompt is empty"));
  CHECK_THROWS_WITH(generate(model, {70}, 4, {}, 1), Contains("prompt token 70 is outside the vocabulary of 65"));
}
