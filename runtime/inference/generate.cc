// generate: prefill, then sample and decode one token at a time, rebuilding the cache from
// the newest half of the context when it is full.
#include "runtime/inference/generate.h"

#include <algorithm>
#include <chrono>

#include "runtime/inference/decode.h"

namespace tessera {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The cache refilled with the last `keep` tokens; the logits of the newest.
Tensor refill(const InferenceModel& model, KvCache& cache, const std::vector<int32_t>& tokens, int64_t keep) {
  cache.clear();
  const std::vector<int32_t> window(tokens.end() - keep, tokens.end());
  return decode(model, {&cache}, {window});
}

void check_request(const InferenceModel& model, const std::vector<int32_t>& prompt, int max_tokens) {
  TESSERA_REQUIRE(!prompt.empty(), "generate: the prompt is empty");
  TESSERA_REQUIRE(max_tokens >= 0, "generate: max_tokens {} must be >= 0", max_tokens);
  for (const int32_t t : prompt) {
    TESSERA_REQUIRE(t >= 0 && t < model.vocab_size(), "generate: prompt token {} is outside the vocabulary of {}",
                    t, model.vocab_size());
  }
}

}  // namespace

GenerationResult generate(const InferenceModel& model, const std::vector<int32_t>& prompt, int max_tokens,
                          const SamplingOptions& options, uint64_t seed) {
  check_request(model, prompt, max_tokens);
  GenerationResult result;
  result.tokens = prompt;
  if (max_tokens == 0) return result;
  const int64_t context = model.context_length();
  // At least one token, so a context of 1 still makes progress.
  const int64_t rebuild_keep = std::max<int64_t>(1, context / 2);
  KvCache cache(model);
  Sampler sampler(seed);

  auto start = Clock::now();
  Tensor logits = refill(model, cache, result.tokens, std::min<int64_t>(context, result.tokens.size()));
  result.prefill_ms = ms_since(start);
  start = Clock::now();
  for (int i = 0; i < max_tokens; ++i) {
    const int32_t next = sampler.next(logits.f32(), model.vocab_size(), options);
    result.tokens.push_back(next);
    if (i + 1 == max_tokens) break;
    if (cache.length() == context) {
      logits = refill(model, cache, result.tokens, rebuild_keep);
    } else {
      logits = decode(model, {&cache}, {{next}});
    }
  }
  result.decode_ms = ms_since(start);
  return result;
}

GenerationResult generate_uncached(const InferenceModel& model, const std::vector<int32_t>& prompt, int max_tokens,
                                   const SamplingOptions& options, uint64_t seed) {
  check_request(model, prompt, max_tokens);
  GenerationResult result;
  result.tokens = prompt;
  Sampler sampler(seed);
  const int64_t context = model.context_length();
  for (int i = 0; i < max_tokens; ++i) {
    const auto start = Clock::now();
    const int64_t T = std::min<int64_t>(context, result.tokens.size());
    Tensor window = Tensor::empty({1, T}, DType::I32);
    std::copy(result.tokens.end() - T, result.tokens.end(), window.i32());
    const Tensor logits = model.forward(window);
    result.tokens.push_back(sampler.next(logits.f32() + (T - 1) * model.vocab_size(), model.vocab_size(), options));
    (i == 0 ? result.prefill_ms : result.decode_ms) += ms_since(start);
  }
  return result;
}

}  // namespace tessera
