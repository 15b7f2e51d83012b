// A user data source: token sequences from a fixed random "language" in which each token is
// followed by its successor in a hidden permutation 90% of the time and by a uniformly random
// token otherwise. A model can learn it, so the loss falls from ln(vocab) towards the
// stream's entropy (about 0.6 nats for 24 tokens).
//
// Each sample is generated from (seed, split, step, sample index) alone, as the DataSource
// contract asks: whichever rank or microbatch asks for sample i of step s gets the same
// tokens, so a run on 1 rank and on any (dp, pp) layout trains on the same batches.
#pragma once

#include <cstdint>
#include <vector>

#include <tessera/tessera.h>

class SyntheticTokens : public tessera::DataSource {
 public:
  // The language depends on seed only.
  SyntheticTokens(int64_t vocab, uint64_t seed);
  tessera::Vocabulary vocabulary() const override { return tessera::Vocabulary::tokens(vocab_); }
  bool has_validation() const override { return true; }
  tessera::Batch batch(const tessera::BatchRequest& request) override;

 private:
  int64_t vocab_;
  uint64_t seed_;
  std::vector<int32_t> successor_;
};
