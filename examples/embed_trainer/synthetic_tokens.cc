// SyntheticTokens: the hidden permutation and the sampler.
#include "synthetic_tokens.h"

#include <algorithm>
#include <numeric>

#include "runtime/error.h"

SyntheticTokens::SyntheticTokens(int64_t vocab, uint64_t seed, uint64_t stream)
    : vocab_(vocab), successor_(static_cast<size_t>(vocab)), rng_(seed * 1000003u + stream + 1) {
  TESSERA_REQUIRE(vocab >= 2, "synthetic data: vocab = {}: needs at least 2 tokens", vocab);
  std::iota(successor_.begin(), successor_.end(), 0);
  std::mt19937_64 language(seed);
  std::shuffle(successor_.begin(), successor_.end(), language);
}

TokenBatch SyntheticTokens::next_batch(int64_t B, int64_t T) {
  TokenBatch batch{tessera::Tensor::empty({B, T}, tessera::DType::I32),
                   tessera::Tensor::empty({B, T}, tessera::DType::I32)};
  std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(vocab_ - 1));
  std::bernoulli_distribution follow(0.9);
  int32_t* tokens = batch.tokens.i32();
  int32_t* targets = batch.targets.i32();
  for (int64_t b = 0; b < B; ++b) {
    int32_t t = any(rng_);
    // T + 1 tokens per row: inputs are [0, T), targets [1, T + 1).
    for (int64_t i = 0; i <= T; ++i) {
      if (i < T) tokens[b * T + i] = t;
      if (i > 0) targets[b * T + i - 1] = t;
      t = follow(rng_) ? successor_[static_cast<size_t>(t)] : any(rng_);
    }
  }
  return batch;
}
