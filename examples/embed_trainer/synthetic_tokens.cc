// SyntheticTokens: the hidden permutation and the per-sample generator.
#include "synthetic_tokens.h"

#include <algorithm>
#include <numeric>
#include <random>

SyntheticTokens::SyntheticTokens(int64_t vocab, uint64_t seed)
    : vocab_(vocab), seed_(seed), successor_(static_cast<size_t>(vocab)) {
  TESSERA_REQUIRE(vocab >= 2, "synthetic data: vocab = {}: needs at least 2 tokens", vocab);
  std::iota(successor_.begin(), successor_.end(), 0);
  std::mt19937_64 language(seed);
  std::shuffle(successor_.begin(), successor_.end(), language);
}

tessera::Batch SyntheticTokens::batch(const tessera::BatchRequest& r) {
  const int64_t B = r.count, T = r.seq_length;
  tessera::Batch batch{tessera::Tensor::empty({B, T}, tessera::DType::I32),
                       tessera::Tensor::empty({B, T}, tessera::DType::I32)};
  std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(vocab_ - 1));
  std::bernoulli_distribution follow(0.9);
  int32_t* tokens = batch.tokens.i32();
  int32_t* targets = batch.targets.i32();
  const uint64_t split = r.split == tessera::Split::Train ? 0 : 1;
  for (int64_t b = 0; b < B; ++b) {
    // One generator per sample, seeded by what identifies it (never by who asks).
    std::seed_seq key{seed_, split, static_cast<uint64_t>(r.step), static_cast<uint64_t>(r.first + b)};
    std::mt19937_64 rng(key);
    int32_t t = any(rng);
    // T + 1 tokens per row: inputs are [0, T), targets [1, T + 1).
    for (int64_t i = 0; i <= T; ++i) {
      if (i < T) tokens[b * T + i] = t;
      if (i > 0) targets[b * T + i - 1] = t;
      t = follow(rng) ? successor_[static_cast<size_t>(t)] : any(rng);
    }
  }
  return batch;
}
