// The JSON `tessera serve` writes, in OpenAI's shapes: completion answers and their streamed
// chunks (`text_completion` objects with `choices[]`), the `logprobs` object, and the error
// object {"error": {"message", "type", "param", "code"}}.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/data/vocabulary.h"
#include "runtime/inference/logprobs.h"
#include "runtime/serving/completion.h"

namespace tessera {

// Who answers: the completion's id ("cmpl-..."), its creation time and the model's name.
struct CompletionHeader {
  std::string id;
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// A token's log-probabilities with where its text starts in the choice's text. A prompt's first
// token has none (nothing predicts it): null in the JSON, as OpenAI writes it.
struct TokenLogprobsAt {
  int32_t token = 0;
  std::optional<TokenLogprobs> logprobs;
  int64_t text_offset = 0;
};

// OpenAI's completions `logprobs` object: tokens, token_logprobs, top_logprobs, text_offset.
nlohmann::json logprobs_json(const std::vector<TokenLogprobsAt>& tokens, const Vocabulary& vocab);

// "length" | "stop"; a cancelled choice is never answered.
std::string finish_reason_name(FinishReason reason);

nlohmann::json choice_json(int index, const std::string& text, const nlohmann::json& logprobs,
                           const nlohmann::json& finish_reason);

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);

// The whole answer (stream: false), or one chunk of a stream with the given choices.
nlohmann::json completion_json(const CompletionHeader& header, nlohmann::json choices);

// {"error": {"message", "type", "param", "code"}}: type from the status (invalid_request_error
// for 4xx, server_error for 5xx), param and code null when empty.
nlohmann::json error_json(int status, const std::string& message, const std::string& param = "",
                          const std::string& code = "");

// JSON text for an HTTP body. Generated text may hold bytes that are not UTF-8 (a bytes or
// chars vocabulary can cut a multi-byte character); they become U+FFFD instead of throwing.
std::string dump_json(const nlohmann::json& json);

}  // namespace tessera
