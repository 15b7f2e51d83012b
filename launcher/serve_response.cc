// OpenAI-shaped JSON of `tessera serve`.
#include "launcher/serve_response.h"

namespace tessera {

using nlohmann::json;

json logprobs_json(const std::vector<TokenLogprobsAt>& tokens, const Vocabulary& vocab) {
  json out = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (const TokenLogprobsAt& t : tokens) {
    out["tokens"].push_back(vocab.decode(std::vector<int32_t>{t.token}));
    out["text_offset"].push_back(t.text_offset);
    if (!t.logprobs) {
      out["token_logprobs"].push_back(nullptr);
      out["top_logprobs"].push_back(nullptr);
      continue;
    }
    out["token_logprobs"].push_back(t.logprobs->chosen.logprob);
    json top = json::object();
    for (const TokenLogprob& alternative : t.logprobs->top) {
      top[vocab.decode(std::vector<int32_t>{alternative.token})] = alternative.logprob;
    }
    out["top_logprobs"].push_back(std::move(top));
  }
  return out;
}

std::string finish_reason_name(FinishReason reason) {
  return reason == FinishReason::Stop ? "stop" : "length";
}

json choice_json(int index, const std::string& text, const json& logprobs, const json& finish_reason) {
  return json{{"index", index}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", finish_reason}};
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}};
}

json completion_json(const CompletionHeader& header, json choices) {
  return json{{"id", header.id},
              {"object", "text_completion"},
              {"created", header.created},
              {"model", header.model},
              {"choices", std::move(choices)}};
}

json error_json(int status, const std::string& message, const std::string& param, const std::string& code) {
  const auto or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return json{{"error",
               {{"message", message},
                {"type", status >= 500 ? "server_error" : "invalid_request_error"},
                {"param", or_null(param)},
                {"code", or_null(code)}}}};
}

std::string dump_json(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace tessera
