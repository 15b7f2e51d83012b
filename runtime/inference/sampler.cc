// Sampler: splitmix64 uniforms, softmax in double over the kept tokens, inverse-CDF draw.
#include "runtime/inference/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "runtime/splitmix64.h"

namespace tessera {

Sampler::Sampler(uint64_t seed) : state_(seed) {}

double Sampler::uniform() {
  const uint64_t z = splitmix64(state_);
  state_ += kSplitmix64Gamma;
  return static_cast<double>(z >> 11) * 0x1.0p-53;  // the top 53 bits: exact doubles in [0, 1)
}

int32_t Sampler::next(const float* logits, int64_t vocab, const SamplingOptions& options) {
  TESSERA_CHECK(vocab > 0, "sampler: empty vocabulary");
  TESSERA_REQUIRE(options.temperature >= 0 && std::isfinite(options.temperature),
                  "sampling: temperature {} must be a finite number >= 0", options.temperature);
  TESSERA_REQUIRE(options.top_k >= 0, "sampling: top_k {} must be >= 0 (0 = no limit)", options.top_k);
  TESSERA_REQUIRE(options.top_p > 0 && options.top_p <= 1, "sampling: top_p {} must be in (0, 1]", options.top_p);
  // Higher logit first, lower id first among equals: argmax and top_k are deterministic.
  const auto before = [logits](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (options.temperature == 0 || options.top_k == 1) {
    int32_t best = 0;
    for (int32_t t = 1; t < vocab; ++t) {
      if (before(t, best)) best = t;
    }
    return best;
  }
  order_.resize(vocab);
  for (int32_t t = 0; t < vocab; ++t) order_[t] = t;
  const int64_t kept = options.top_k > 0 ? std::min<int64_t>(options.top_k, vocab) : vocab;
  if (kept < vocab) {
    std::nth_element(order_.begin(), order_.begin() + kept, order_.end(), before);
    order_.resize(kept);
    std::sort(order_.begin(), order_.end());
  }
  double max_logit = logits[order_[0]];
  for (const int32_t t : order_) max_logit = std::max<double>(max_logit, logits[t]);
  weights_.resize(order_.size());
  double total = 0;
  for (size_t i = 0; i < order_.size(); ++i) {
    weights_[i] = std::exp((logits[order_[i]] - max_logit) / options.temperature);
    total += weights_[i];
  }
  if (options.top_p < 1) {
    keep_nucleus(options.top_p, total);
    total = 0;
    for (const double w : weights_) total += w;
  }
  double u = uniform() * total;
  size_t pick = 0;
  for (size_t i = 0; i < order_.size(); ++i) {
    // Rounding can leave u just past the last weight: the last token with any weight wins then.
    if (weights_[i] > 0) pick = i;
    if (u < weights_[i]) break;
    u -= weights_[i];
  }
  return order_[pick];
}

void Sampler::keep_nucleus(float top_p, double total) {
  // Most probable first (lower id among equals), keep until the mass reaches top_p, then back
  // to id order so that the draw walks the tokens in the same order as without a cut.
  std::vector<size_t> rank(order_.size());
  for (size_t i = 0; i < rank.size(); ++i) rank[i] = i;
  std::sort(rank.begin(), rank.end(), [this](size_t a, size_t b) {
    return weights_[a] > weights_[b] || (weights_[a] == weights_[b] && order_[a] < order_[b]);
  });
  size_t kept = 0;
  double mass = 0;
  while (kept < rank.size() && (kept == 0 || mass < top_p * total)) mass += weights_[rank[kept++]];
  rank.resize(kept);
  std::sort(rank.begin(), rank.end());
  std::vector<int32_t> order;
  std::vector<double> weights;
  for (const size_t i : rank) {
    order.push_back(order_[i]);
    weights.push_back(weights_[i]);
  }
  order_ = std::move(order);
  weights_ = std::move(weights);
}

}  // namespace tessera
