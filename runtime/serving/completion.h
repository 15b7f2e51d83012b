// One completion request as the decode loop sees it (token ids, sampling, seed) and what it
// answers: the plain data passed between the HTTP layer (launcher/serve_*.cc) and the loop.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/inference/sampler.h"

namespace tessera {

struct CompletionRequest {
  std::vector<int32_t> prompt;  // at least one token
  int64_t max_tokens = 16;      // >= 1; prompt.size() + max_tokens <= the context length
  SamplingOptions sampling;
  uint64_t seed = 0;            // the sequence's own sampler: same seed, same tokens
};

enum class CompletionStatus {
  Finished,  // max_tokens generated
  Rejected,  // never started: the server shut down while it waited in the queue
  Failed,    // the model step threw; `error` says why
};

struct CompletionResult {
  CompletionStatus status = CompletionStatus::Finished;
  std::string error;            // Rejected / Failed: one line
  std::vector<int32_t> tokens;  // the generated tokens, without the prompt
  double queue_ms = 0;          // submitted -> admitted into the batch
  double prefill_ms = 0;        // the batched step that fed the prompt and sampled token 1
  double decode_ms = 0;         // the steps after it, until the last token
};

}  // namespace tessera
