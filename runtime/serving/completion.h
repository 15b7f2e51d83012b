// One completion sequence as the decode loop sees it (token ids, sampling, seed, a callback per
// token) and what it answers: the plain data passed between the HTTP layer
// (launcher/serve_*.cc) and the loop. One OpenAI request with several prompts or n > 1 is
// several of these.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/inference/logprobs.h"
#include "runtime/inference/sampler.h"

namespace tessera {

// What the decode loop tells the request about each token it sampled, right after the step.
struct TokenEvent {
  int32_t token = 0;
  int64_t index = 0;                // 0 for the first generated token
  const TokenLogprobs* logprobs = nullptr;  // set when the request asked for them
  // With the first token of a request that asked for prompt_logprobs: those of prompt tokens
  // 1.. (the first has no context to be predicted from).
  const std::vector<TokenLogprobs>* prompt_logprobs = nullptr;
};

// The request's answer to a token: go on, stop here (a stop string matched: the sequence
// leaves the batch with finish reason Stop), or cancel (the client is gone).
enum class TokenVerdict { Continue, Stop, Cancel };
// Runs on the decode loop thread between steps: it must be quick and must not block.
using TokenCallback = std::function<TokenVerdict(const TokenEvent&)>;

struct CompletionRequest {
  std::vector<int32_t> prompt;  // at least one token
  int64_t max_tokens = 16;      // >= 0 (0: only the prompt's logprobs); prompt + max_tokens <= context
  SamplingOptions sampling;
  uint64_t seed = 0;            // the sequence's own sampler: same seed, same tokens
  int logprobs = -1;            // >= 0: the chosen token's logprob and this many top ones
  bool prompt_logprobs = false;  // the same for the prompt's tokens (needs logprobs >= 0)
  TokenCallback on_token;       // optional
};

enum class CompletionStatus {
  Finished,  // generated until max_tokens, a Stop or a Cancel verdict
  Rejected,  // never started, or cut off: the server shut down
  Failed,    // the model step threw; `error` says why
};

enum class FinishReason { Length, Stop, Cancelled };

struct CompletionResult {
  CompletionStatus status = CompletionStatus::Finished;
  FinishReason finish_reason = FinishReason::Length;
  std::string error;                   // Rejected / Failed: one line
  std::vector<int32_t> tokens;         // the generated tokens, without the prompt
  std::vector<TokenLogprobs> logprobs;  // one per token when asked for
  std::vector<TokenLogprobs> prompt_logprobs;  // prompt tokens 1.. when asked for
  double queue_ms = 0;                 // submitted -> admitted into the batch
  double first_token_ms = 0;           // submitted -> first token sampled (time to first token)
  double prefill_ms = 0;               // the batched step that fed the prompt and sampled token 1
  double decode_ms = 0;                // the steps after it, until the last token
};

}  // namespace tessera
