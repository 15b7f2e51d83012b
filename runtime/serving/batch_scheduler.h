// Continuous batching: the sequences being generated, advanced together by one batched model
// step per token. Requests join between steps (their first step feeds the whole prompt, in
// the same call as the others' single tokens) and leave as soon as they have max_tokens, or
// their token callback says stop or cancel (a stop string, a client that went away).
// Synchronous and single-threaded; DecodeLoop runs it on its thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "runtime/inference/sampler.h"
#include "runtime/serving/request_queue.h"
#include "runtime/serving/sequence_model.h"
#include "runtime/serving/serving_observer.h"

namespace tessera {

class BatchScheduler {
 public:
  // observer may be null.
  BatchScheduler(const SequenceModel& model, size_t max_batch, ServingObserver* observer = nullptr);

  size_t active() const { return active_.size(); }
  size_t capacity() const { return max_batch_; }
  size_t free_slots() const { return max_batch_ - active_.size(); }

  // Takes a request into the batch (Error when no slot is free, or when its prompt plus
  // max_tokens does not fit the context length: the HTTP layer checks that first). On an
  // error `pending` is left as it was, so the caller can still answer it.
  void admit(PendingRequest&& pending);

  // One model step over every active sequence; each samples one token from its own seeded
  // sampler, so its text does not depend on what else is in the batch. Finished sequences get
  // their result and leave. Returns how many sequences the step ran.
  size_t step();

  // Ends every active sequence with this status and reason (a step threw; shutdown's deadline).
  void end_all(CompletionStatus status, const std::string& reason);

 private:
  struct Sequence {
    PendingRequest pending;
    std::unique_ptr<SequenceState> state;
    Sampler sampler;
    CompletionResult result;
    std::chrono::steady_clock::time_point admitted, prefilled, last_token;
  };
  // Appends the sampled token to s (its logits row `logits`; on its prefill with prompt
  // logprobs, `prompt_rows` holds a row per prompt token), tells its callback; true when s is
  // finished.
  bool accept_token(Sequence& s, int32_t token, const float* logits, const float* prompt_rows,
                    std::chrono::steady_clock::time_point now);

  const SequenceModel& model_;
  const size_t max_batch_;
  ServingObserver* observer_;
  std::vector<std::unique_ptr<Sequence>> active_;
};

}  // namespace tessera
