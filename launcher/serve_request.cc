// Parsing and validation of completion requests, and the JSON answers of `tessera serve`.
#include "launcher/serve_request.h"

#include <algorithm>
#include <array>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "core/error.h"

namespace tessera {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 5> kFields = {"prompt", "max_tokens", "temperature", "top_k", "seed"};
constexpr int64_t kDefaultMaxTokens = 16;

// What a wrong value was, for the message: numbers as written, other kinds by name.
std::string describe(const json& value) {
  if (value.is_number()) return dump_json(value);
  return std::string(value.is_null() ? "null" : value.type_name());
}

// An integer field, saturated to int64 (a huge unsigned value is still "too large", not negative).
std::optional<int64_t> integer_field(const json& body, const char* name) {
  if (!body.contains(name)) return std::nullopt;
  const json& value = body[name];
  TESSERA_REQUIRE(value.is_number_integer(), "'{}' must be an integer, not {}", name, describe(value));
  if (value.is_number_unsigned()) {
    return static_cast<int64_t>(std::min<uint64_t>(value.get<uint64_t>(), std::numeric_limits<int64_t>::max()));
  }
  return value.get<int64_t>();
}

json parse_body(std::string_view body) {
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {
    // what() is "[json.exception.parse_error.101] parse error at ...": keep the readable part.
    std::string message = e.what();
    const auto bracket = message.find("] ");
    if (bracket != std::string::npos) message = message.substr(bracket + 2);
    throw InputError("invalid JSON: " + message);
  }
}

}  // namespace

std::string dump_json(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_body(const std::string& reason) { return json{{"error", reason}}; }

CompletionRequest parse_completion_request(std::string_view text, const Vocabulary& vocab,
                                           const CompletionLimits& limits, uint64_t default_seed) {
  const json body = parse_body(text);
  TESSERA_REQUIRE(body.is_object(), "the body must be a JSON object, not {}", describe(body));
  for (const auto& item : body.items()) {
    TESSERA_REQUIRE(std::find(kFields.begin(), kFields.end(), item.key()) != kFields.end(),
                    "unknown field '{}' (allowed: {})", item.key(), fmt::join(kFields, ", "));
  }

  TESSERA_REQUIRE(body.contains("prompt"), "missing field 'prompt' (a string)");
  const json& prompt = body["prompt"];
  TESSERA_REQUIRE(prompt.is_string(), "'prompt' must be a string, not {}", describe(prompt));
  const auto& prompt_text = prompt.get_ref<const std::string&>();
  TESSERA_REQUIRE(!prompt_text.empty(), "'prompt' must not be empty");
  TESSERA_REQUIRE(static_cast<int64_t>(prompt_text.size()) <= limits.max_prompt_chars,
                  "'prompt' has {} characters; this server accepts at most {} (--max-prompt-chars)",
                  prompt_text.size(), limits.max_prompt_chars);
  CompletionRequest request;
  try {
    request.prompt = vocab.encode(prompt_text);
  } catch (const InputError& e) {
    throw InputError(fmt::format("'prompt': {}", e.what()));
  }
  const auto prompt_tokens = static_cast<int64_t>(request.prompt.size());
  const int64_t room = limits.context_length - prompt_tokens;
  TESSERA_REQUIRE(room >= 1, "'prompt' has {} tokens; the context length {} leaves no room for new ones",
                  prompt_tokens, limits.context_length);

  request.max_tokens = integer_field(body, "max_tokens").value_or(std::min(kDefaultMaxTokens, room));
  TESSERA_REQUIRE(request.max_tokens >= 1, "'max_tokens' must be at least 1, not {}", request.max_tokens);
  TESSERA_REQUIRE(request.max_tokens <= room,
                  "'max_tokens' {} is too large: the prompt's {} tokens plus max_tokens must fit the "
                  "context length {} (at most {} here)",
                  request.max_tokens, prompt_tokens, limits.context_length, room);

  if (body.contains("temperature")) {
    const json& t = body["temperature"];
    TESSERA_REQUIRE(t.is_number(), "'temperature' must be a number, not {}", describe(t));
    const double value = t.get<double>();
    TESSERA_REQUIRE(value >= 0.0 && value <= limits.max_temperature,
                    "'temperature' must be in [0, {}] (0: greedy), not {}", limits.max_temperature, describe(t));
    request.sampling.temperature = static_cast<float>(value);
  }
  const int64_t top_k = integer_field(body, "top_k").value_or(0);
  TESSERA_REQUIRE(top_k >= 0 && top_k <= vocab.size(),
                  "'top_k' must be in [0, {}] (the vocabulary size; 0: all tokens), not {}", vocab.size(), top_k);
  request.sampling.top_k = static_cast<int>(top_k);

  if (body.contains("seed")) {
    const json& seed = body["seed"];
    TESSERA_REQUIRE(seed.is_number_unsigned(), "'seed' must be an integer in [0, 2^64), not {}", describe(seed));
    request.seed = seed.get<uint64_t>();
  } else {
    request.seed = default_seed;
  }
  return request;
}

json completion_response(const std::string& model_name, const CompletionRequest& request,
                         const CompletionResult& result, const Vocabulary& vocab) {
  const auto prompt_tokens = static_cast<int64_t>(request.prompt.size());
  const auto completion_tokens = static_cast<int64_t>(result.tokens.size());
  return json{
      {"object", "text_completion"},
      {"model", model_name},
      {"text", vocab.decode(result.tokens)},
      {"seed", request.seed},
      {"finish_reason", "length"},
      {"usage", {{"prompt_tokens", prompt_tokens},
                 {"completion_tokens", completion_tokens},
                 {"total_tokens", prompt_tokens + completion_tokens}}},
      {"timing", {{"queue_ms", result.queue_ms}, {"prefill_ms", result.prefill_ms}, {"decode_ms", result.decode_ms}}},
  };
}

}  // namespace tessera
