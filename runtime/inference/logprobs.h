// Log-probabilities of a sampled token and of the most likely alternatives, as the OpenAI
// completions API reports them (`logprobs: k`): log_softmax of the model's raw logits, before
// temperature, top_k or top_p (what vLLM reports too), so they describe the model, not the
// sampling settings.
#pragma once

#include <cstdint>
#include <vector>

namespace tessera {

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
};

struct TokenLogprobs {
  TokenLogprob chosen;             // the token that was sampled
  std::vector<TokenLogprob> top;   // the `top` most likely tokens, most likely first
};

// logits has vocab entries; chosen in [0, vocab); top in [0, vocab]. Ties go to the lower id.
TokenLogprobs token_logprobs(const float* logits, int64_t vocab, int32_t chosen, int top);

}  // namespace tessera
