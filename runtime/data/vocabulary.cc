// Vocabulary: character, byte and plain-size vocabularies, their encoding and JSON form.
#include "runtime/data/vocabulary.h"

#include <fmt/format.h>

#include "core/error.h"

namespace tessera {
namespace {

// A byte as a reader would recognise it in a message: 'a', or its hex code if unprintable.
std::string describe_byte(unsigned char byte) {
  if (byte >= 0x20 && byte < 0x7f) return fmt::format("'{}' (byte 0x{:02x})", char(byte), byte);
  return fmt::format("byte 0x{:02x}", byte);
}

}  // namespace

std::string vocabulary_kind_name(Vocabulary::Kind kind) {
  switch (kind) {
    case Vocabulary::Kind::Chars: return "chars";
    case Vocabulary::Kind::Bytes: return "bytes";
    case Vocabulary::Kind::Tokens: return "tokens";
  }
  return "?";
}

Vocabulary Vocabulary::chars(std::string_view text) {
  std::array<bool, 256> seen{};
  for (char c : text) seen[static_cast<unsigned char>(c)] = true;
  Vocabulary vocab;
  vocab.kind_ = Kind::Chars;
  vocab.ids_.fill(-1);
  for (int byte = 0; byte < 256; ++byte) {
    if (!seen[byte]) continue;
    vocab.ids_[byte] = static_cast<int32_t>(vocab.chars_.size());
    vocab.chars_.push_back(static_cast<char>(byte));
  }
  vocab.size_ = static_cast<int64_t>(vocab.chars_.size());
  return vocab;
}

Vocabulary Vocabulary::bytes() { return Vocabulary(); }

Vocabulary Vocabulary::tokens(int64_t size) {
  TESSERA_REQUIRE(size > 0 && size <= INT32_MAX, "vocabulary size {} must be in [1, {}]", size,
                  INT32_MAX);
  Vocabulary vocab;
  vocab.kind_ = Kind::Tokens;
  vocab.size_ = size;
  return vocab;
}

std::vector<int32_t> Vocabulary::encode(std::string_view text) const {
  TESSERA_REQUIRE(has_text(), "a tokens vocabulary ({} ids) has no text encoding", size_);
  std::vector<int32_t> out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const int32_t id = kind_ == Kind::Bytes ? byte : ids_[byte];
    TESSERA_REQUIRE(id >= 0, "{} at position {} is not in the vocabulary ({} characters of the "
                    "training text)", describe_byte(byte), i, size_);
    out.push_back(id);
  }
  return out;
}

std::string Vocabulary::decode(std::span<const int32_t> tokens) const {
  TESSERA_REQUIRE(has_text(), "a tokens vocabulary ({} ids) has no text decoding", size_);
  std::string out;
  out.reserve(tokens.size());
  for (int32_t id : tokens) {
    TESSERA_CHECK(id >= 0 && id < size_, "token {} is outside the vocabulary of {}", id, size_);
    out.push_back(kind_ == Kind::Bytes ? static_cast<char>(id) : chars_[id]);
  }
  return out;
}

nlohmann::json Vocabulary::to_json() const {
  nlohmann::json json = {{"kind", vocabulary_kind_name(kind_)}, {"size", size_}};
  // Byte values, not a string: a chars vocabulary of UTF-8 text holds partial sequences,
  // which JSON strings cannot carry.
  if (kind_ == Kind::Chars) {
    std::vector<int> values(chars_.begin(), chars_.end());
    for (int& v : values) v = static_cast<unsigned char>(v);
    json["chars"] = values;
  }
  return json;
}

Vocabulary Vocabulary::from_json(const nlohmann::json& json) {
  TESSERA_REQUIRE(json.is_object() && json.contains("kind") && json["kind"].is_string() &&
                      json.contains("size") && json["size"].is_number_integer(),
                  "vocabulary JSON needs a string 'kind' and an integer 'size': {}", json.dump());
  const auto kind = json["kind"].get<std::string>();
  const auto size = json["size"].get<int64_t>();
  if (kind == "bytes") {
    TESSERA_REQUIRE(size == 256, "vocabulary JSON: a bytes vocabulary has size 256, not {}", size);
    return bytes();
  }
  if (kind == "tokens") return tokens(size);
  TESSERA_REQUIRE(kind == "chars", "vocabulary JSON: unknown kind '{}' (expected chars, bytes or "
                  "tokens)", kind);
  TESSERA_REQUIRE(json.contains("chars") && json["chars"].is_array(),
                  "vocabulary JSON: a chars vocabulary needs a 'chars' array of byte values");
  std::string text;
  int previous = -1;
  for (const auto& value : json["chars"]) {
    TESSERA_REQUIRE(value.is_number_integer() && value.get<int>() > previous &&
                        value.get<int>() < 256,
                    "vocabulary JSON: 'chars' must be increasing byte values, got {}",
                    value.dump());
    previous = value.get<int>();
    text.push_back(static_cast<char>(previous));
  }
  Vocabulary vocab = chars(text);
  TESSERA_REQUIRE(vocab.size() == size, "vocabulary JSON: size {} but {} chars", size,
                  vocab.size());
  return vocab;
}

}  // namespace tessera
