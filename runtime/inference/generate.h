// Text generation with the KV cache: prefill the prompt, then one decode step per token.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/inference/inference_model.h"
#include "runtime/inference/sampler.h"

namespace tessera {

struct GenerationResult {
  std::vector<int32_t> tokens;  // the prompt, then the generated tokens
  double prefill_ms = 0;        // the prompt's forward
  double decode_ms = 0;         // every later step, cache rebuilds included
};

// Prompt + max_tokens sampled tokens, using the KV cache. The model sees at most
// context_length tokens: a longer prompt is conditioned on its last context_length tokens,
// and when the cache is full it is rebuilt from the last context_length / 2 tokens (one
// prefill every context_length / 2 tokens instead of nanoGPT's full recompute each step).
// InputError for an empty prompt or a token outside the vocabulary.
GenerationResult generate(const InferenceModel& model, const std::vector<int32_t>& prompt,
                          int max_tokens, const SamplingOptions& options, uint64_t seed);

// The same without a cache, as nanoGPT's sample.py: every token runs the full forward over
// the last context_length tokens (a sliding window), so each step costs a whole prefill. The
// baseline the KV cache is measured against; prefill_ms is the first step. Equal tokens to
// generate() while the sequence fits the context.
GenerationResult generate_uncached(const InferenceModel& model, const std::vector<int32_t>& prompt,
                                   int max_tokens, const SamplingOptions& options, uint64_t seed);

}  // namespace tessera
