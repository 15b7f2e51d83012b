// Deterministic batch sampling that does not depend on the parallel layout: the sample at
// (step, global index) is a pure function of the seed, so each data-parallel rank makes only
// its slice of the global batch, and a run resumed at a step sees the same batches.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

// Seed streams, so validation batches never repeat the training ones.
inline constexpr uint64_t kTrainStream = 0;
inline constexpr uint64_t kValStream = 1;

struct Batch {
  Tensor tokens;   // I32 [count, seq_length]
  Tensor targets;  // I32 [count, seq_length]: tokens shifted left by one
};

class BatchSampler {
 public:
  // tokens is borrowed and must outlive the sampler; it needs at least seq_length + 1 tokens.
  BatchSampler(const std::vector<int32_t>* tokens, int64_t seq_length, uint64_t seed,
               uint64_t stream = kTrainStream);

  // Where sample `index` of the global batch at `step` starts, in [0, size - seq_length - 1].
  int64_t offset(int64_t step, int64_t index) const;

  // Samples [first, first + count) of the global batch at `step`, on the host.
  Batch sample(int64_t step, int64_t first, int64_t count) const;

  int64_t seq_length() const { return seq_length_; }

 private:
  const std::vector<int32_t>* tokens_;
  int64_t seq_length_;
  uint64_t key_;  // seed and stream, mixed once
};

}  // namespace tessera
