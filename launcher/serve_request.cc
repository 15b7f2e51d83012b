// Parsing and validation of OpenAI completion requests.
#include "launcher/serve_request.h"

#include <algorithm>
#include <array>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tessera {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 13> kFields = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stop", "seed", "stream",
    "stream_options", "logprobs", "echo"};
constexpr int64_t kDefaultMaxTokens = 16;  // OpenAI's default

template <typename... Args>
void require(bool ok, const char* param, fmt::format_string<Args...> format, Args&&... args) {
  if (!ok) throw RequestError(400, param, fmt::format(format, std::forward<Args>(args)...));
}

// What a wrong value was, for the message: numbers as written, other kinds by name.
std::string describe(const json& value) {
  if (value.is_number()) return value.dump();
  return std::string(value.is_null() ? "null" : value.type_name());
}

// A field that is present and not null.
const json* given(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

// An integer field, saturated to int64 (a huge unsigned value is still "too large", not negative).
std::optional<int64_t> integer_field(const json& body, const char* name) {
  const json* value = given(body, name);
  if (value == nullptr) return std::nullopt;
  require(value->is_number_integer(), name, "'{}' must be an integer, not {}", name, describe(*value));
  if (value->is_number_unsigned()) {
    return static_cast<int64_t>(std::min<uint64_t>(value->get<uint64_t>(), std::numeric_limits<int64_t>::max()));
  }
  return value->get<int64_t>();
}

std::optional<double> number_field(const json& body, const char* name, double low, double high, const char* rule) {
  const json* value = given(body, name);
  if (value == nullptr) return std::nullopt;
  require(value->is_number(), name, "'{}' must be a number, not {}", name, describe(*value));
  const double v = value->get<double>();
  require(v >= low && v <= high, name, "'{}' must be in {}, not {}", name, rule, describe(*value));
  return v;
}

bool bool_field(const json& body, const char* name) {
  const json* value = given(body, name);
  if (value == nullptr) return false;
  require(value->is_boolean(), name, "'{}' must be true or false, not {}", name, describe(*value));
  return value->get<bool>();
}

json parse_body(std::string_view body) {
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {
    // what() is "[json.exception.parse_error.101] parse error at ...": keep the readable part.
    std::string message = e.what();
    const auto bracket = message.find("] ");
    if (bracket != std::string::npos) message = message.substr(bracket + 2);
    throw RequestError(400, "", "invalid JSON: " + message);
  }
}

// A string or a non-empty list of strings (`what` names one element in messages).
std::vector<std::string> strings_field(const json& value, const char* name, size_t max_count) {
  if (value.is_string()) return {value.get<std::string>()};
  require(value.is_array(), name, "'{}' must be a string or a list of strings, not {}", name, describe(value));
  require(!value.empty() && value.size() <= max_count, name, "'{}' must hold 1 to {} strings, not {}", name,
          max_count, value.size());
  std::vector<std::string> out;
  for (size_t i = 0; i < value.size(); ++i) {
    require(value[i].is_string(), name, "'{}[{}]' must be a string, not {}", name, i, describe(value[i]));
    out.push_back(value[i].get<std::string>());
  }
  return out;
}

// Token ids, as OpenAI accepts a prompt: each an integer in [0, vocabulary size).
std::vector<int32_t> token_ids(const json& value, const std::string& name, const Vocabulary& vocab) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < value.size(); ++i) {
    const json& id = value[i];
    require(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < vocab.size(), "prompt",
            "{}[{}] must be a token id in [0, {}), not {}", name, i, vocab.size(), describe(id));
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return ids;
}

void add_prompt(CompletionParams& p, const std::string& name, std::string text, std::vector<int32_t> ids,
                const CompletionLimits& limits) {
  require(!ids.empty(), "prompt", "{} must not be empty", name);
  require(static_cast<int64_t>(text.size()) <= limits.max_prompt_chars, "prompt",
          "{} has {} characters; this server accepts at most {} (--max-prompt-chars)", name, text.size(),
          limits.max_prompt_chars);
  p.prompt_texts.push_back(std::move(text));
  p.prompts.push_back(std::move(ids));
}

// A string, a list of strings, a list of token ids or a list of such lists (OpenAI's four forms).
void parse_prompts(const json& body, const Vocabulary& vocab, const CompletionLimits& limits, CompletionParams& p) {
  const json* prompt = given(body, "prompt");
  require(prompt != nullptr, "prompt", "missing field 'prompt' (a string or a list of strings)");
  const size_t most = static_cast<size_t>(std::max<int64_t>(1, limits.max_sequences));
  if (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_number_integer()) {
    std::vector<int32_t> ids = token_ids(*prompt, "'prompt'", vocab);
    std::string text = vocab.decode(ids);  // before ids is moved from
    add_prompt(p, "'prompt'", std::move(text), std::move(ids), limits);
    return;
  }
  if (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_array()) {
    require(prompt->size() <= most, "prompt", "'prompt' must hold 1 to {} prompts, not {}", most, prompt->size());
    for (size_t i = 0; i < prompt->size(); ++i) {
      const std::string name = fmt::format("'prompt[{}]'", i);
      require((*prompt)[i].is_array(), "prompt", "{} must be a list of token ids, not {}", name,
              describe((*prompt)[i]));
      std::vector<int32_t> ids = token_ids((*prompt)[i], name, vocab);
      std::string text = vocab.decode(ids);  // before ids is moved from
      add_prompt(p, name, std::move(text), std::move(ids), limits);
    }
    return;
  }
  const std::vector<std::string> texts = strings_field(*prompt, "prompt", most);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string name = prompt->is_array() ? fmt::format("'prompt[{}]'", i) : "'prompt'";
    require(!texts[i].empty(), "prompt", "{} must not be empty", name);
    try {
      add_prompt(p, name, texts[i], vocab.encode(texts[i]), limits);
    } catch (const RequestError&) {
      throw;
    } catch (const InputError& e) {
      throw RequestError(400, "prompt", fmt::format("{}: {}", name, e.what()));
    }
  }
}

void parse_lengths(const json& body, const CompletionLimits& limits, CompletionParams& p) {
  const std::optional<int64_t> max_tokens = integer_field(body, "max_tokens");
  // 0 new tokens makes sense only to score the prompt (echo with logprobs), as OpenAI allows.
  const int64_t least = bool_field(body, "echo") ? 0 : 1;
  if (max_tokens) {
    require(*max_tokens >= least, "max_tokens", "'max_tokens' must be at least {}{}, not {}", least,
            least == 0 ? "" : " (0 only with echo)", *max_tokens);
  }
  for (size_t i = 0; i < p.prompts.size(); ++i) {
    const auto prompt_tokens = static_cast<int64_t>(p.prompts[i].size());
    const int64_t room = limits.context_length - prompt_tokens;
    require(room >= 1, "prompt", "the prompt has {} tokens; the context length {} leaves no room for new ones",
            prompt_tokens, limits.context_length);
    require(!max_tokens || *max_tokens <= room, "max_tokens",
            "'max_tokens' {} is too large: the prompt's {} tokens plus max_tokens must fit the context length {} "
            "(at most {} here)", max_tokens.value_or(0), prompt_tokens, limits.context_length, room);
    p.max_tokens.push_back(max_tokens.value_or(std::min(kDefaultMaxTokens, room)));
  }
}

void parse_sampling(const json& body, const Vocabulary& vocab, const CompletionLimits& limits, CompletionParams& p) {
  const std::string temperature_rule = fmt::format("[0, {}] (0: greedy)", limits.max_temperature);
  p.sampling.temperature = static_cast<float>(
      number_field(body, "temperature", 0, limits.max_temperature, temperature_rule.c_str()).value_or(1.0));
  const double top_p = number_field(body, "top_p", 0, 1, "(0, 1]").value_or(1.0);
  require(top_p > 0, "top_p", "'top_p' must be in (0, 1], not 0");
  p.sampling.top_p = static_cast<float>(top_p);
  const int64_t top_k = integer_field(body, "top_k").value_or(0);
  require(top_k >= 0 && top_k <= vocab.size(), "top_k",
          "'top_k' must be in [0, {}] (the vocabulary size; 0: all tokens), not {}", vocab.size(), top_k);
  p.sampling.top_k = static_cast<int>(top_k);
  if (const json* seed = given(body, "seed")) {
    require(seed->is_number_unsigned(), "seed", "'seed' must be an integer in [0, 2^64), not {}", describe(*seed));
    p.seed = seed->get<uint64_t>();
  }
}

void parse_options(const json& body, const CompletionLimits& limits, CompletionParams& p) {
  const int64_t n = integer_field(body, "n").value_or(1);
  const int64_t most = std::max<int64_t>(1, limits.max_sequences / static_cast<int64_t>(p.prompts.size()));
  require(n >= 1 && n <= most, "n", "'n' must be in [1, {}] ({} prompts x n choices, at most {} per request), not {}",
          most, p.prompts.size(), limits.max_sequences, n);
  p.n = static_cast<int>(n);
  if (const json* stop = given(body, "stop")) {
    p.stop = strings_field(*stop, "stop", static_cast<size_t>(limits.max_stop));
    for (const std::string& s : p.stop) {
      require(!s.empty() && s.size() <= 256, "stop", "each 'stop' string must have 1 to 256 bytes, not {}", s.size());
    }
  }
  p.stream = bool_field(body, "stream");
  if (const json* options = given(body, "stream_options")) {
    require(p.stream, "stream_options", "'stream_options' needs 'stream': true");
    require(options->is_object(), "stream_options", "'stream_options' must be an object, not {}", describe(*options));
    for (const auto& item : options->items()) {
      require(item.key() == "include_usage", "stream_options", "unknown field 'stream_options.{}' (allowed: include_usage)",
              item.key());
    }
    p.include_usage = bool_field(*options, "include_usage");
  }
  if (const std::optional<int64_t> logprobs = integer_field(body, "logprobs")) {
    require(*logprobs >= 0 && *logprobs <= limits.max_logprobs, "logprobs", "'logprobs' must be in [0, {}], not {}",
            limits.max_logprobs, *logprobs);
    p.logprobs = static_cast<int>(*logprobs);
  }
  p.echo = bool_field(body, "echo");
}

}  // namespace

CompletionParams parse_completion_request(std::string_view text, const Vocabulary& vocab,
                                          const CompletionLimits& limits) {
  const json body = parse_body(text);
  require(body.is_object(), "", "the body must be a JSON object, not {}", describe(body));
  for (const auto& item : body.items()) {
    require(std::find(kFields.begin(), kFields.end(), item.key()) != kFields.end(), item.key().c_str(),
            "unknown field '{}' (allowed: {})", item.key(), fmt::join(kFields, ", "));
  }
  const json* model = given(body, "model");
  require(model != nullptr, "model", "missing field 'model' (this server has '{}')", limits.model_name);
  require(model->is_string(), "model", "'model' must be a string, not {}", describe(*model));
  if (model->get<std::string>() != limits.model_name) {
    throw RequestError(404, "model",
                       fmt::format("the model '{}' does not exist; this server has '{}'", model->get<std::string>(),
                                   limits.model_name),
                       "model_not_found");
  }
  CompletionParams p;
  parse_prompts(body, vocab, limits, p);
  parse_lengths(body, limits, p);
  parse_sampling(body, vocab, limits, p);
  parse_options(body, limits, p);
  return p;
}

}  // namespace tessera
