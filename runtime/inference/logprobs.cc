// token_logprobs: a log-sum-exp in double, then a partial sort for the top entries.
#include "runtime/inference/logprobs.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tessera {

TokenLogprobs token_logprobs(const float* logits, int64_t vocab, int32_t chosen, int top) {
  TESSERA_CHECK(vocab > 0 && chosen >= 0 && chosen < vocab, "logprobs: token {} outside the vocabulary of {}", chosen,
                vocab);
  TESSERA_CHECK(top >= 0 && top <= vocab, "logprobs: top {} outside [0, {}]", top, vocab);
  double max_logit = logits[0];
  for (int64_t t = 1; t < vocab; ++t) max_logit = std::max<double>(max_logit, logits[t]);
  double total = 0;
  for (int64_t t = 0; t < vocab; ++t) total += std::exp(logits[t] - max_logit);
  const double log_total = max_logit + std::log(total);
  const auto logprob = [&](int32_t t) { return static_cast<float>(logits[t] - log_total); };

  TokenLogprobs out;
  out.chosen = {chosen, logprob(chosen)};
  std::vector<int32_t> ids(vocab);
  for (int32_t t = 0; t < vocab; ++t) ids[t] = t;
  std::partial_sort(ids.begin(), ids.begin() + top, ids.end(), [logits](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int i = 0; i < top; ++i) out.top.push_back({ids[i], logprob(ids[i])});
  return out;
}

}  // namespace tessera
