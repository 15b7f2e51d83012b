// A user data source: an endless stream of tokens from a fixed random "language" in which
// each token is followed by its successor in a hidden permutation 90% of the time and by a
// uniformly random token otherwise. A model can learn it, so the loss falls from ln(vocab)
// towards the stream's entropy (about 0.6 nats for 24 tokens).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "runtime/tensor.h"

struct TokenBatch {
  tessera::Tensor tokens;   // I32 [B, T]
  tessera::Tensor targets;  // I32 [B, T]: the next token of each position
};

class SyntheticTokens {
 public:
  // The language depends on seed only (the same on every rank); the samples also depend on
  // stream, so each data-parallel rank reads different data.
  SyntheticTokens(int64_t vocab, uint64_t seed, uint64_t stream);
  TokenBatch next_batch(int64_t B, int64_t T);

 private:
  int64_t vocab_;
  std::vector<int32_t> successor_;
  std::mt19937_64 rng_;
};
