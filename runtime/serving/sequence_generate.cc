// generate_sequence: prefill, then sample and step one token at a time (see sequence_generate.h).
#include "runtime/serving/sequence_generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// A fresh sequence holding the last `keep` tokens; the logits of the newest.
Tensor refill(const SequenceModel& model, std::unique_ptr<SequenceState>& state, const std::vector<int32_t>& tokens,
              int64_t keep) {
  state = model.new_sequence();
  return model.step({state.get()}, {std::vector<int32_t>(tokens.end() - keep, tokens.end())}, {false});
}

}  // namespace

GenerationResult generate_sequence(const SequenceModel& model, const std::vector<int32_t>& prompt, int max_tokens,
                                   const SamplingOptions& options, uint64_t seed) {
  TESSERA_REQUIRE(!prompt.empty(), "generate: the prompt is empty");
  TESSERA_REQUIRE(max_tokens >= 0, "generate: max_tokens {} must be >= 0", max_tokens);
  for (const int32_t t : prompt) {
    TESSERA_REQUIRE(t >= 0 && t < model.vocab_size(), "generate: prompt token {} is outside the vocabulary of {}", t,
                    model.vocab_size());
  }
  GenerationResult result;
  result.tokens = prompt;
  if (max_tokens == 0) return result;
  const int64_t context = model.context_length();
  const int64_t rebuild_keep = std::max<int64_t>(1, context / 2);
  std::unique_ptr<SequenceState> state;
  Sampler sampler(seed);
  auto start = Clock::now();
  int64_t held = std::min<int64_t>(context, static_cast<int64_t>(result.tokens.size()));
  Tensor logits = refill(model, state, result.tokens, held);
  result.prefill_ms = ms_since(start);
  start = Clock::now();
  for (int i = 0; i < max_tokens; ++i) {
    const int32_t next = sampler.next(logits.f32(), model.vocab_size(), options);
    result.tokens.push_back(next);
    if (i + 1 == max_tokens) break;
    if (held == context) {
      held = rebuild_keep;
      logits = refill(model, state, result.tokens, held);
    } else {
      ++held;
      logits = model.step({state.get()}, {{next}}, {false});
    }
  }
  result.decode_ms = ms_since(start);
  return result;
}

}  // namespace tessera
