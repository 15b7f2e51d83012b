// Tests of `tessera serve`'s OpenAI request parsing and validation (each bad body is one exact
// line naming the field, with its status and param) and of the JSON it answers with.
#include <catch2/catch.hpp>

#include <string>

#include "core/error.h"
#include "launcher/serve_request.h"
#include "launcher/serve_response.h"

using namespace tessera;
using Catch::Matchers::StartsWith;

namespace {

const Vocabulary kVocab = Vocabulary::chars("abcdefgh \n");  // 10 characters
CompletionLimits limits(int64_t context = 16) {
  CompletionLimits l;
  l.model_name = "tiny";
  l.context_length = context;
  l.max_prompt_chars = 12;
  l.max_sequences = 8;
  l.max_logprobs = 5;
  l.max_stop = 4;
  return l;
}

CompletionParams parse(const std::string& fields) {
  return parse_completion_request(R"({"model": "tiny", )" + fields + "}", kVocab, limits());
}

// The error a body gets: "status param: message".
std::string refusal(const std::string& body) {
  try {
    parse_completion_request(body, kVocab, limits());
  } catch (const RequestError& e) {
    return std::to_string(e.status()) + " " + e.param() + ": " + e.what();
  }
  return "accepted";
}
std::string refusal_of(const std::string& fields) { return refusal(R"({"model": "tiny", )" + fields + "}"); }

}  // namespace

TEST_CASE("serving: a full OpenAI request is parsed into prompts, sampling and options", "[serving]") {
  const CompletionParams p = parse(R"("prompt": ["bad cafe", "ab"], "max_tokens": 5, "temperature": 0.5,
      "top_p": 0.9, "top_k": 3, "n": 2, "stop": ["\n", "ee"], "seed": 18446744073709551615, "stream": true,
      "stream_options": {"include_usage": true}, "logprobs": 3)");
  CHECK(p.prompts == std::vector<std::vector<int32_t>>{kVocab.encode("bad cafe"), kVocab.encode("ab")});
  CHECK(p.prompt_texts == std::vector<std::string>{"bad cafe", "ab"});
  CHECK(p.max_tokens == std::vector<int64_t>{5, 5});
  CHECK(p.sampling.temperature == 0.5f);
  CHECK(p.sampling.top_p == 0.9f);
  CHECK(p.sampling.top_k == 3);
  CHECK(p.n == 2);
  CHECK(p.stop == std::vector<std::string>{"\n", "ee"});
  CHECK(p.seed == UINT64_MAX);
  CHECK(p.stream);
  CHECK(p.include_usage);
  CHECK(p.logprobs == 3);
  CHECK_FALSE(p.echo);
}

TEST_CASE("serving: defaults fill what a request leaves out, and null means left out", "[serving]") {
  CompletionParams p = parse(R"("prompt": "abc")");
  CHECK(p.max_tokens == std::vector<int64_t>{13});  // min(16, 16 - 3 prompt tokens)
  CHECK(p.sampling.temperature == 1.0f);
  CHECK(p.sampling.top_p == 1.0f);
  CHECK(p.sampling.top_k == 0);
  CHECK(p.n == 1);
  CHECK(p.stop.empty());
  CHECK_FALSE(p.seed.has_value());
  CHECK_FALSE(p.stream);
  CHECK(p.logprobs == -1);
  p = parse(R"("prompt": ["a", "abcdefgh"], "stop": null, "logprobs": null, "max_tokens": null, "echo": true)");
  CHECK(p.max_tokens == std::vector<int64_t>{15, 8});
  CHECK(p.echo);
  CHECK(parse(R"("prompt": "a", "stop": "h")").stop == std::vector<std::string>{"h"});
  p = parse(R"("prompt": [1, 0, 3])");  // token ids, as OpenAI accepts them
  CHECK(p.prompts == std::vector<std::vector<int32_t>>{{1, 0, 3}});
  CHECK(p.prompt_texts == std::vector<std::string>{kVocab.decode(std::vector<int32_t>{1, 0, 3})});
  CHECK(parse(R"("prompt": [[2], [4, 5]])").prompts == std::vector<std::vector<int32_t>>{{2}, {4, 5}});
  p = parse(R"("prompt": "abc", "echo": true, "logprobs": 2, "max_tokens": 0)");  // score the prompt only
  CHECK(p.max_tokens == std::vector<int64_t>{0});
  CHECK(p.echo);
  CHECK(p.logprobs == 2);
}

TEST_CASE("serving: bad bodies are refused with one line naming the field and the rule", "[serving]") {
  CHECK_THAT(refusal("{\"prompt\": "), StartsWith("400 : invalid JSON: parse error at line 1, column 12"));
  CHECK(refusal("[1, 2]") == "400 : the body must be a JSON object, not array");
  CHECK(refusal(R"({"prompt": "a"})") == "400 model: missing field 'model' (this server has 'tiny')");
  CHECK(refusal(R"({"model": "gpt-4", "prompt": "a"})") == "404 model: the model 'gpt-4' does not exist; this server has 'tiny'");
  CHECK(refusal(R"({"model": 4, "prompt": "a"})") == "400 model: 'model' must be a string, not 4");
  CHECK(refusal_of(R"("prompt": "a", "max_token": 3)") ==
        "400 max_token: unknown field 'max_token' (allowed: model, prompt, max_tokens, temperature, top_p, top_k, n, "
        "stop, seed, stream, stream_options, logprobs, echo)");
  CHECK(refusal_of(R"("max_tokens": 3)") == "400 prompt: missing field 'prompt' (a string or a list of strings)");
  CHECK(refusal_of(R"("prompt": 12)") == "400 prompt: 'prompt' must be a string or a list of strings, not 12");
  CHECK(refusal_of(R"("prompt": ["a", 3])") == "400 prompt: 'prompt[1]' must be a string, not 3");
  CHECK(refusal_of(R"("prompt": [])") == "400 prompt: 'prompt' must hold 1 to 8 strings, not 0");
  CHECK(refusal_of(R"("prompt": [1, 10])") == "400 prompt: 'prompt'[1] must be a token id in [0, 10), not 10");
  CHECK(refusal_of(R"("prompt": [1, "a"])") == "400 prompt: 'prompt'[1] must be a token id in [0, 10), not string");
  CHECK(refusal_of(R"("prompt": [[1], 2])") == "400 prompt: 'prompt[1]' must be a list of token ids, not 2");
  CHECK(refusal_of(R"("prompt": [[1], []])") == "400 prompt: 'prompt[1]' must not be empty");
  CHECK(refusal_of(R"("prompt": "")") == "400 prompt: 'prompt' must not be empty");
  CHECK(refusal_of(R"("prompt": ["a", ""])") == "400 prompt: 'prompt[1]' must not be empty");
  CHECK(refusal_of(R"("prompt": "abcdefghabcde")") ==
        "400 prompt: 'prompt' has 13 characters; this server accepts at most 12 (--max-prompt-chars)");
  CHECK(refusal_of(R"("prompt": "abz")") ==
        "400 prompt: 'prompt': 'z' (byte 0x7a) at position 2 is not in the vocabulary (10 characters of the training text)");
  CHECK(refusal_of(R"("prompt": "a", "max_tokens": "5")") == "400 max_tokens: 'max_tokens' must be an integer, not string");
  CHECK(refusal_of(R"("prompt": "a", "max_tokens": 2.5)") == "400 max_tokens: 'max_tokens' must be an integer, not 2.5");
  CHECK(refusal_of(R"("prompt": "a", "max_tokens": 0)") ==
        "400 max_tokens: 'max_tokens' must be at least 1 (0 only with echo), not 0");
  CHECK(refusal_of(R"("prompt": "a", "max_tokens": -1, "echo": true)") ==
        "400 max_tokens: 'max_tokens' must be at least 0, not -1");
  CHECK(refusal_of(R"("prompt": ["a", "abc"], "max_tokens": 14)") ==
        "400 max_tokens: 'max_tokens' 14 is too large: the prompt's 3 tokens plus max_tokens must fit the context "
        "length 16 (at most 13 here)");
  CHECK_THAT(refusal_of(R"("prompt": "a", "max_tokens": 18446744073709551615)"),
             StartsWith("400 max_tokens: 'max_tokens' 9223372036854775807 is too large"));
  CHECK(refusal_of(R"("prompt": "a", "temperature": "hot")") ==
        "400 temperature: 'temperature' must be a number, not string");
  CHECK(refusal_of(R"("prompt": "a", "temperature": -0.5)") ==
        "400 temperature: 'temperature' must be in [0, 100] (0: greedy), not -0.5");
  CHECK(refusal_of(R"("prompt": "a", "top_p": 0)") == "400 top_p: 'top_p' must be in (0, 1], not 0");
  CHECK(refusal_of(R"("prompt": "a", "top_p": 1.5)") == "400 top_p: 'top_p' must be in (0, 1], not 1.5");
  CHECK(refusal_of(R"("prompt": "a", "top_k": 11)") ==
        "400 top_k: 'top_k' must be in [0, 10] (the vocabulary size; 0: all tokens), not 11");
  CHECK(refusal_of(R"("prompt": "a", "seed": -1)") == "400 seed: 'seed' must be an integer in [0, 2^64), not -1");
  CHECK(refusal_of(R"("prompt": "a", "n": 0)") ==
        "400 n: 'n' must be in [1, 8] (1 prompts x n choices, at most 8 per request), not 0");
  CHECK(refusal_of(R"("prompt": ["a", "b", "c"], "n": 3)") ==
        "400 n: 'n' must be in [1, 2] (3 prompts x n choices, at most 8 per request), not 3");
  CHECK(refusal_of(R"("prompt": "a", "stop": "")") == "400 stop: each 'stop' string must have 1 to 256 bytes, not 0");
  CHECK(refusal_of(R"("prompt": "a", "stop": ["a", "b", "c", "d", "e"])") ==
        "400 stop: 'stop' must hold 1 to 4 strings, not 5");
  CHECK(refusal_of(R"("prompt": "a", "stop": 5)") == "400 stop: 'stop' must be a string or a list of strings, not 5");
  CHECK(refusal_of(R"("prompt": "a", "stream": "yes")") == "400 stream: 'stream' must be true or false, not string");
  CHECK(refusal_of(R"("prompt": "a", "stream_options": {"include_usage": true})") ==
        "400 stream_options: 'stream_options' needs 'stream': true");
  CHECK(refusal_of(R"("prompt": "a", "stream": true, "stream_options": {"usage": true})") ==
        "400 stream_options: unknown field 'stream_options.usage' (allowed: include_usage)");
  CHECK(refusal_of(R"("prompt": "a", "logprobs": 6)") == "400 logprobs: 'logprobs' must be in [0, 5], not 6");
  CHECK(refusal_of(R"("prompt": "a", "logprobs": true)") == "400 logprobs: 'logprobs' must be an integer, not boolean");
}

TEST_CASE("serving: every refusal is an InputError", "[serving]") {
  CHECK_THROWS_AS(parse_completion_request("nope", kVocab, limits()), InputError);
}

TEST_CASE("serving: a prompt that fills the context leaves no room", "[serving]") {
  CHECK_THROWS_WITH(parse_completion_request(R"({"model": "tiny", "prompt": "abcd"})", kVocab, limits(4)),
                    "the prompt has 4 tokens; the context length 4 leaves no room for new ones");
}

TEST_CASE("serving: answers and errors have OpenAI's shapes, and bad UTF-8 does not throw", "[serving]") {
  const CompletionHeader header{"cmpl-1", 1700000000, "tiny"};
  nlohmann::json body = completion_json(header, nlohmann::json::array({choice_json(0, "cafe", nullptr, "length")}));
  body["usage"] = usage_json(2, 4);
  CHECK(body == nlohmann::json::parse(R"({"id": "cmpl-1", "object": "text_completion", "created": 1700000000,
      "model": "tiny", "choices": [{"index": 0, "text": "cafe", "logprobs": null, "finish_reason": "length"}],
      "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}})"));
  const int32_t c = kVocab.encode("c")[0], a = kVocab.encode("a")[0];
  const TokenLogprobsAt first{a, std::nullopt, 0};  // a prompt's first token: nothing predicts it
  const TokenLogprobsAt token{c, TokenLogprobs{{c, -0.5f}, {{c, -0.5f}, {a, -1.5f}}}, 3};
  CHECK(logprobs_json({first, token}, kVocab) == nlohmann::json::parse(R"({"tokens": ["a", "c"],
      "token_logprobs": [null, -0.5], "top_logprobs": [null, {"c": -0.5, "a": -1.5}], "text_offset": [0, 3]})"));
  CHECK(error_json(404, "gone", "model", "model_not_found") == nlohmann::json::parse(R"({"error": {"message": "gone",
      "type": "invalid_request_error", "param": "model", "code": "model_not_found"}})"));
  CHECK(error_json(503, "full")["error"]["type"] == "server_error");
  CHECK(error_json(503, "full")["error"]["param"].is_null());
  CHECK(dump_json(nlohmann::json{{"text", std::string("a\xff")}}) == "{\"text\":\"a\xef\xbf\xbd\"}");
}
