// The model as the batch scheduler sees it: per-sequence state (a KV cache) and one batched
// step. The server runs the inference engine through InferenceSequenceModel; the scheduler's
// unit tests run a scripted model, so batching is tested without a checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

class SequenceState {
 public:
  virtual ~SequenceState() = default;
};

class SequenceModel {
 public:
  virtual ~SequenceModel() = default;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t context_length() const = 0;
  virtual std::unique_ptr<SequenceState> new_sequence() const = 0;
  // Appends new_tokens[i] (non-empty) to sequences[i] and returns F32 logits [rows, vocab_size]:
  // a row for each sequence's last token -- or, with every_row[i], for each of its new tokens
  // in order (for the log-probabilities of a prompt). Sequences of different lengths share one
  // call.
  virtual Tensor step(const std::vector<SequenceState*>& sequences, const std::vector<std::vector<int32_t>>& new_tokens,
                      const std::vector<bool>& every_row) const = 0;
  // Called by the decode loop after about a second with nothing to step: a model spread over
  // ranks tells them it is still alive (so their waits do not time out) and learns whether
  // they are. Throws when a peer is gone.
  virtual void idle() const {}
  // False once a failure left the model unable to step again (a peer rank timed out or died):
  // the decode loop then ends instead of failing every later request one by one.
  virtual bool usable() const { return true; }
};

}  // namespace tessera
