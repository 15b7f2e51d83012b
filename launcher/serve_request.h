// `tessera serve`'s JSON: POST /v1/completions bodies parsed and validated into a
// CompletionRequest (every rule broken is one InputError line naming the field), and the
// JSON written back. Unknown fields are refused, so a misspelt "max_token" is not ignored.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "runtime/data/vocabulary.h"
#include "runtime/serving/completion.h"

namespace tessera {

struct CompletionLimits {
  int64_t context_length = 0;    // prompt tokens + max_tokens must fit
  int64_t max_prompt_chars = 0;  // --max-prompt-chars
  float max_temperature = 100.0f;
};

// Body: {"prompt": str, "max_tokens": int = min(16, room left), "temperature": number = 0.8,
// "top_k": int = 0, "seed": int = default_seed}. The prompt is encoded with `vocab`.
CompletionRequest parse_completion_request(std::string_view body, const Vocabulary& vocab,
                                           const CompletionLimits& limits, uint64_t default_seed);

// The 200 answer: text, seed, token counts and timings.
nlohmann::json completion_response(const std::string& model_name, const CompletionRequest& request,
                                   const CompletionResult& result, const Vocabulary& vocab);

// {"error": reason}.
nlohmann::json error_body(const std::string& reason);

// JSON text for an HTTP body. Generated text may hold bytes that are not UTF-8 (a bytes or
// chars vocabulary can cut a multi-byte character); they become U+FFFD instead of throwing.
std::string dump_json(const nlohmann::json& json);

}  // namespace tessera
