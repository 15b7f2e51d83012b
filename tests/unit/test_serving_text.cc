// Tests of the pieces a completion is made of below the HTTP layer: stop strings and the text
// held back while streaming (TextStream), nucleus sampling (top_p) and the log-probabilities
// reported with tokens.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "runtime/inference/logprobs.h"
#include "runtime/inference/sampler.h"
#include "runtime/serving/text_stream.h"

using namespace tessera;

TEST_CASE("text stream: a stop string ends the text before it, even across tokens", "[serving]") {
  TextStream stream({"END", "\n\n"});
  CHECK_FALSE(stream.append("Hello"));
  CHECK(stream.take_ready(false) == "Hello");
  CHECK_FALSE(stream.append(" E"));
  CHECK(stream.take_ready(false) == " ");  // "E" may start "END": held back
  CHECK_FALSE(stream.append("N"));
  CHECK(stream.take_ready(false).empty());
  CHECK(stream.append("Dx"));
  CHECK(stream.stopped());
  CHECK(stream.text() == "Hello ");
  CHECK(stream.take_ready(false).empty());
}

TEST_CASE("text stream: held-back text that is not a stop after all is released", "[serving]") {
  TextStream stream({"\n\n"});
  CHECK_FALSE(stream.append("a\n"));
  CHECK(stream.take_ready(false) == "a");
  CHECK_FALSE(stream.append("b"));
  CHECK(stream.take_ready(false) == "\nb");
  CHECK_FALSE(stream.append("\n"));
  CHECK(stream.take_ready(true) == "\n");  // the end: everything goes
}

TEST_CASE("text stream: an unfinished UTF-8 character waits for its last byte", "[serving]") {
  TextStream stream({});
  CHECK_FALSE(stream.append("caf\xc3"));
  CHECK(stream.take_ready(false) == "caf");
  CHECK_FALSE(stream.append("\xa9!"));
  CHECK(stream.take_ready(false) == "\xc3\xa9!");
  CHECK_FALSE(stream.append("\xe2\x82"));
  CHECK(stream.take_ready(false).empty());
  CHECK(stream.take_ready(true) == "\xe2\x82");
}

TEST_CASE("sampler: top_p keeps the smallest set of likeliest tokens reaching the mass", "[serving]") {
  // Probabilities 0.5, 0.3, 0.15, 0.05 (at temperature 1).
  const float logits[4] = {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  std::map<int32_t, int> counts;
  Sampler sampler(7);
  SamplingOptions options;
  options.temperature = 1.0f;
  options.top_p = 0.75f;  // 0.5 + 0.3 = 0.8 >= 0.75: tokens 1 and 3 only
  for (int i = 0; i < 2000; ++i) counts[sampler.next(logits, 4, options)]++;
  CHECK(counts.size() == 2);
  CHECK(counts[1] > 1100);  // 0.5 / 0.8 = 62.5 %
  CHECK(counts[3] > 600);
  options.top_p = 0.4f;  // the likeliest token alone
  CHECK(sampler.next(logits, 4, options) == 1);
  options.top_p = 1.0f;
  Sampler a(3), b(3);
  SamplingOptions all = options;
  all.top_p = 0.9999999f;  // keeps every token: the same draws as no cut
  for (int i = 0; i < 50; ++i) CHECK(a.next(logits, 4, options) == b.next(logits, 4, all));
  options.top_p = 0.0f;
  CHECK_THROWS_WITH(sampler.next(logits, 4, options), "sampling: top_p 0 must be in (0, 1]");
}

TEST_CASE("logprobs: log_softmax of the raw logits, the top ones likeliest first", "[serving]") {
  const float logits[4] = {1.0f, 3.0f, 2.0f, 3.0f};
  const TokenLogprobs lp = token_logprobs(logits, 4, 2, 3);
  const double total = std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0);
  CHECK(lp.chosen.token == 2);
  CHECK(lp.chosen.logprob == Approx(2.0 - std::log(total)));
  REQUIRE(lp.top.size() == 3);
  CHECK(lp.top[0].token == 1);  // a tie goes to the lower id
  CHECK(lp.top[1].token == 3);
  CHECK(lp.top[2].token == 2);
  CHECK(lp.top[0].logprob == Approx(3.0 - std::log(total)));
  CHECK(token_logprobs(logits, 4, 0, 0).top.empty());
}
