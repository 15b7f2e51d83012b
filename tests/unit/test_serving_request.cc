// Tests of `tessera serve`'s request parsing and validation: each bad body is one exact line
// naming the field and the rule; good bodies become the right CompletionRequest.
#include <catch2/catch.hpp>

#include <string>

#include "launcher/serve_request.h"
#include "core/error.h"

using namespace tessera;

namespace {

const Vocabulary kVocab = Vocabulary::chars("abcdefgh \n");  // 10 characters
const CompletionLimits kLimits{/*context_length=*/16, /*max_prompt_chars=*/12, /*max_temperature=*/100.0f};

CompletionRequest parse(const std::string& body) { return parse_completion_request(body, kVocab, kLimits, 99); }

}  // namespace

TEST_CASE("serving: a full request is parsed into tokens, sampling and seed", "[serving]") {
  const CompletionRequest r = parse(R"({"prompt": "bad cafe", "max_tokens": 5, "temperature": 0.5,
                                        "top_k": 3, "seed": 18446744073709551615})");
  CHECK(r.prompt == kVocab.encode("bad cafe"));
  CHECK(r.max_tokens == 5);
  CHECK(r.sampling.temperature == 0.5f);
  CHECK(r.sampling.top_k == 3);
  CHECK(r.seed == UINT64_MAX);
}

TEST_CASE("serving: defaults fill what a request leaves out", "[serving]") {
  CompletionRequest r = parse(R"({"prompt": "abc"})");
  CHECK(r.max_tokens == 13);  // min(16, 16 - 3 prompt tokens)
  CHECK(r.sampling.temperature == 0.8f);
  CHECK(r.sampling.top_k == 0);
  CHECK(r.seed == 99);
  r = parse(R"({"prompt": "a", "temperature": 0})");
  CHECK(r.max_tokens == 15);
  CHECK(r.sampling.temperature == 0.0f);
  CHECK(parse(R"({"prompt": "a", "top_k": 10})").sampling.top_k == 10);
  CHECK(parse(R"({"prompt": "a", "max_tokens": 15})").max_tokens == 15);
}

TEST_CASE("serving: bad bodies are refused with one line naming the field and the rule", "[serving]") {
  CHECK_THROWS_WITH(parse("{\"prompt\": "), Catch::Matchers::StartsWith("invalid JSON: parse error at line 1, column 12"));
  CHECK_THROWS_WITH(parse(""), Catch::Matchers::StartsWith("invalid JSON: "));
  CHECK_THROWS_WITH(parse("[1, 2]"), "the body must be a JSON object, not array");
  CHECK_THROWS_WITH(parse("\"abc\""), "the body must be a JSON object, not string");
  CHECK_THROWS_WITH(parse(R"({"max_tokens": 3})"), "missing field 'prompt' (a string)");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "max_token": 3})"),
                    "unknown field 'max_token' (allowed: prompt, max_tokens, temperature, top_k, seed)");
  CHECK_THROWS_WITH(parse(R"({"prompt": 12})"), "'prompt' must be a string, not 12");
  CHECK_THROWS_WITH(parse(R"({"prompt": null})"), "'prompt' must be a string, not null");
  CHECK_THROWS_WITH(parse(R"({"prompt": ""})"), "'prompt' must not be empty");
  CHECK_THROWS_WITH(parse(R"({"prompt": "abcdefghabcde"})"),
                    "'prompt' has 13 characters; this server accepts at most 12 (--max-prompt-chars)");
  CHECK_THROWS_WITH(parse(R"({"prompt": "abz"})"),
                    "'prompt': 'z' (byte 0x7a) at position 2 is not in the vocabulary (10 characters of the "
                    "training text)");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "max_tokens": "5"})"), "'max_tokens' must be an integer, not string");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "max_tokens": 2.5})"), "'max_tokens' must be an integer, not 2.5");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "max_tokens": true})"), "'max_tokens' must be an integer, not boolean");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "max_tokens": 0})"), "'max_tokens' must be at least 1, not 0");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "max_tokens": -3})"), "'max_tokens' must be at least 1, not -3");
  CHECK_THROWS_WITH(parse(R"({"prompt": "abc", "max_tokens": 14})"),
                    "'max_tokens' 14 is too large: the prompt's 3 tokens plus max_tokens must fit the context "
                    "length 16 (at most 13 here)");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "max_tokens": 18446744073709551615})"),
                    Catch::Matchers::StartsWith("'max_tokens' 9223372036854775807 is too large"));
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "temperature": "hot"})"), "'temperature' must be a number, not string");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "temperature": -0.5})"),
                    "'temperature' must be in [0, 100] (0: greedy), not -0.5");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "temperature": 1e300})"),
                    "'temperature' must be in [0, 100] (0: greedy), not 1e+300");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "top_k": -1})"),
                    "'top_k' must be in [0, 10] (the vocabulary size; 0: all tokens), not -1");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "top_k": 11})"),
                    "'top_k' must be in [0, 10] (the vocabulary size; 0: all tokens), not 11");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "top_k": 1.0})"), "'top_k' must be an integer, not 1.0");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "seed": -1})"), "'seed' must be an integer in [0, 2^64), not -1");
  CHECK_THROWS_WITH(parse(R"({"prompt": "a", "seed": "7"})"), "'seed' must be an integer in [0, 2^64), not string");
}

TEST_CASE("serving: every refusal is an InputError", "[serving]") {
  CHECK_THROWS_AS(parse("nope"), InputError);
  CHECK_THROWS_AS(parse(R"({"prompt": "a", "top_k": 99})"), InputError);
}

TEST_CASE("serving: a prompt that fills the context leaves no room", "[serving]") {
  const CompletionLimits tight{4, 12, 100.0f};
  CHECK_THROWS_WITH(parse_completion_request(R"({"prompt": "abcd"})", kVocab, tight, 0),
                    "'prompt' has 4 tokens; the context length 4 leaves no room for new ones");
}

TEST_CASE("serving: the answer carries text, counts and timings, and bad UTF-8 does not throw", "[serving]") {
  CompletionRequest request;
  request.prompt = {0, 1};
  request.seed = 7;
  CompletionResult result;
  result.tokens = kVocab.encode("cafe");
  result.queue_ms = 1.5;
  const nlohmann::json body = completion_response("tiny", request, result, kVocab);
  CHECK(body["text"] == "cafe");
  CHECK(body["model"] == "tiny");
  CHECK(body["seed"] == 7);
  CHECK(body["usage"]["prompt_tokens"] == 2);
  CHECK(body["usage"]["completion_tokens"] == 4);
  CHECK(body["usage"]["total_tokens"] == 6);
  CHECK(body["timing"]["queue_ms"] == 1.5);
  CHECK(dump_json(nlohmann::json{{"text", std::string("a\xff")}}) == "{\"text\":\"a\xef\xbf\xbd\"}");
  CHECK(dump_json(error_body("x")) == "{\"error\":\"x\"}");
}
