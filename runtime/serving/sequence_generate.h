// Text generation over any SequenceModel (the Llama engine's, for now): prefill the prompt,
// then one cached step per token, the cache rebuilt from the newest half of the context when
// it is full — the policy of runtime/inference/generate.h, for models other than the GPT's.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/inference/generate.h"
#include "runtime/serving/sequence_model.h"

namespace tessera {

// Prompt + max_tokens sampled tokens. InputError for an empty prompt or a token outside the
// vocabulary.
GenerationResult generate_sequence(const SequenceModel& model, const std::vector<int32_t>& prompt, int max_tokens,
                                   const SamplingOptions& options, uint64_t seed);

}  // namespace tessera
