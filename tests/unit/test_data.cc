// Tests of the in-memory data layer: vocabularies and the deterministic batch sampler.
#include <catch2/catch.hpp>

#include <numeric>

#include "runtime/data/batch_sampler.h"
#include "runtime/data/vocabulary.h"

using namespace tessera;

TEST_CASE("chars vocabulary is the sorted distinct bytes of the text", "[data]") {
  const Vocabulary vocab = Vocabulary::chars("hello world\n");
  CHECK(vocab.kind() == Vocabulary::Kind::Chars);
  CHECK(vocab.size() == 9);  // "\n", " ", d e h l o r w
  CHECK(vocab.decode(std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}) == "\n dehlorw");
  CHECK(vocab.encode("held") == std::vector<int32_t>{4, 3, 5, 2});
}

TEST_CASE("chars vocabulary round-trips its text and names an unknown character", "[data]") {
  const std::string text = "First Citizen:\nBefore we proceed any further, hear me speak.\n";
  const Vocabulary vocab = Vocabulary::chars(text);
  CHECK(vocab.decode(vocab.encode(text)) == text);
  CHECK_THROWS_WITH(vocab.encode("Fix"), "'x' (byte 0x78) at position 2 is not in the vocabulary "
                                         "(27 characters of the training text)");
  CHECK_THROWS_WITH(vocab.encode("\t"), "byte 0x09 at position 0 is not in the vocabulary "
                                        "(27 characters of the training text)");
}

TEST_CASE("bytes vocabulary covers every byte", "[data]") {
  const Vocabulary vocab = Vocabulary::bytes();
  CHECK(vocab.size() == 256);
  const std::string text = "caf\xc3\xa9 \x01\xff";
  const std::vector<int32_t> ids = vocab.encode(text);
  CHECK(ids == std::vector<int32_t>{'c', 'a', 'f', 0xc3, 0xa9, ' ', 1, 255});
  CHECK(vocab.decode(ids) == text);
}

TEST_CASE("vocabularies survive JSON", "[data]") {
  const Vocabulary chars = Vocabulary::chars("na\xc3\xafve\n");
  CHECK(Vocabulary::from_json(nlohmann::json::parse(chars.to_json().dump())) == chars);
  CHECK(Vocabulary::from_json(Vocabulary::bytes().to_json()) == Vocabulary::bytes());
  const Vocabulary tokens = Vocabulary::tokens(50257);
  CHECK(Vocabulary::from_json(tokens.to_json()) == tokens);
  CHECK_FALSE(tokens.has_text());
  CHECK_THROWS_WITH(Vocabulary::from_json({{"kind", "words"}, {"size", 3}}),
                    "vocabulary JSON: unknown kind 'words' (expected chars, bytes or tokens)");
  CHECK_THROWS_WITH(tokens.encode("a"), "a tokens vocabulary (50257 ids) has no text encoding");
}

namespace {

std::vector<int32_t> iota_tokens(int n) {
  std::vector<int32_t> tokens(n);
  std::iota(tokens.begin(), tokens.end(), 0);
  return tokens;
}

std::vector<int32_t> values(const Tensor& t) { return {t.i32(), t.i32() + t.numel()}; }

}  // namespace

TEST_CASE("batch sampling is deterministic and layout independent", "[data]") {
  const std::vector<int32_t> tokens = iota_tokens(1000);
  const BatchSampler sampler(&tokens, 16, 1337);
  const BatchSampler again(&tokens, 16, 1337);
  const Batch whole = sampler.sample(7, 0, 8);
  CHECK(whole.tokens.shape() == Shape{8, 16});
  CHECK(whole.tokens.dtype() == DType::I32);
  CHECK(values(whole.tokens) == values(again.sample(7, 0, 8).tokens));

  std::vector<int32_t> halves = values(sampler.sample(7, 0, 4).tokens);
  const std::vector<int32_t> second = values(sampler.sample(7, 4, 4).tokens);
  halves.insert(halves.end(), second.begin(), second.end());
  CHECK(values(whole.tokens) == halves);

  CHECK(values(whole.tokens) != values(sampler.sample(8, 0, 8).tokens));
  CHECK(values(whole.tokens) != values(BatchSampler(&tokens, 16, 1338).sample(7, 0, 8).tokens));
  CHECK(values(whole.tokens) !=
        values(BatchSampler(&tokens, 16, 1337, kValStream).sample(7, 0, 8).tokens));
}

TEST_CASE("batch targets are the tokens shifted by one", "[data]") {
  std::vector<int32_t> tokens;
  for (int i = 0; i < 300; ++i) tokens.push_back((i * 7919) % 101);
  const BatchSampler sampler(&tokens, 8, 42);
  const Batch batch = sampler.sample(3, 5, 6);
  for (int64_t row = 0; row < 6; ++row) {
    const int64_t start = sampler.offset(3, 5 + row);
    for (int64_t t = 0; t < 8; ++t) {
      CHECK(batch.tokens.i32()[row * 8 + t] == tokens[start + t]);
      CHECK(batch.targets.i32()[row * 8 + t] == tokens[start + t + 1]);
    }
  }
}

TEST_CASE("batch offsets stay in range and reach both ends", "[data]") {
  const std::vector<int32_t> tokens = iota_tokens(21);
  const BatchSampler sampler(&tokens, 16, 7);
  std::vector<int> hits(5, 0);  // starts 0..4 are valid: 4 + 16 is the last token
  for (int64_t step = 0; step < 200; ++step) {
    for (int64_t i = 0; i < 10; ++i) {
      const int64_t offset = sampler.offset(step, i);
      REQUIRE(offset >= 0);
      REQUIRE(offset <= 4);
      ++hits[offset];
    }
  }
  for (int count : hits) CHECK(count > 300);
}
