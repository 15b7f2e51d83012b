// `tessera serve`'s OpenAI completions request: a POST /v1/completions body parsed and
// validated into prompts (in tokens) and options. Every rule broken is one RequestError naming
// the field (OpenAI's `param`); unknown fields are refused, so a misspelt "max_token" is not
// silently ignored. Null stands for "not given", as in OpenAI's API.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "runtime/data/vocabulary.h"
#include "runtime/inference/sampler.h"

namespace tessera {

// A refused request: its HTTP status, the field at fault ("" when none) and OpenAI's error
// code ("" when none). what() is the one-line message.
class RequestError : public InputError {
 public:
  RequestError(int status, std::string param, const std::string& message, std::string code = "")
      : InputError(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string param_, code_;
};

struct CompletionLimits {
  std::string model_name;        // `model` must name it (404 otherwise)
  int64_t context_length = 0;    // prompt tokens + max_tokens must fit
  int64_t max_prompt_chars = 0;  // --max-prompt-chars
  int64_t max_sequences = 0;     // prompts x n per request
  float max_temperature = 100.0f;
  int max_logprobs = 20;
  int max_stop = 16;             // stop strings per request, each at most 256 bytes
};

struct CompletionParams {
  std::vector<std::string> prompt_texts;          // one per prompt
  std::vector<std::vector<int32_t>> prompts;      // the same in tokens
  std::vector<int64_t> max_tokens;                // per prompt (the default depends on its room)
  SamplingOptions sampling;
  int n = 1;                                      // choices per prompt
  std::vector<std::string> stop;
  std::optional<uint64_t> seed;                   // choice i samples with seed + i
  bool stream = false;
  bool include_usage = false;                     // stream_options.include_usage
  int logprobs = -1;                              // -1: none
  bool echo = false;
};

// Body: {"model": str, "prompt": str | [str] | [token id] | [[token id]], "max_tokens": int = min(16, room) (0 allowed with
// echo: the prompt's logprobs only), "temperature":
// number = 1, "top_p": number = 1, "top_k": int = 0 (extension, as vLLM), "n": int = 1,
// "stop": str | [str], "seed": int, "stream": bool, "stream_options": {"include_usage": bool},
// "logprobs": int, "echo": bool}. Throws RequestError.
CompletionParams parse_completion_request(std::string_view body, const Vocabulary& vocab,
                                          const CompletionLimits& limits);

}  // namespace tessera
