// Picks the next token from logits: greedy (temperature 0), or sampling from
// softmax(logits / temperature), optionally restricted to the top_k largest and then to the
// nucleus (the most probable tokens whose probabilities add up to top_p). Deterministic for a
// seed on every platform (its own splitmix64 stream, not std:: distributions).
#pragma once

#include <cstdint>
#include <vector>

namespace tessera {

struct SamplingOptions {
  float temperature = 0.8f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: the whole vocabulary
  float top_p = 1.0f;        // in (0, 1]; 1: no nucleus cut
};

class Sampler {
 public:
  explicit Sampler(uint64_t seed);
  // logits has vocab entries. Ties in argmax and top_k go to the lower token id.
  int32_t next(const float* logits, int64_t vocab, const SamplingOptions& options);

 private:
  double uniform();  // in [0, 1)
  void keep_nucleus(float top_p, double total);  // cuts order_ / weights_ to the nucleus
  uint64_t state_;
  std::vector<int32_t> order_;
  std::vector<double> weights_;
};

}  // namespace tessera
