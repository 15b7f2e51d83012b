// Vocabulary: maps text to token ids and back, and is saved with checkpoints so that
// generation can decode what a trained model writes.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tessera {

class Vocabulary {
 public:
  // chars: the sorted distinct bytes of the training text (nanoGPT's sorted(set(text)));
  // bytes: all 256 byte values; tokens: ids from a token file, with no text form.
  enum class Kind { Chars, Bytes, Tokens };

  Vocabulary() = default;
  static Vocabulary chars(std::string_view text);
  static Vocabulary bytes();
  static Vocabulary tokens(int64_t size);

  Kind kind() const { return kind_; }
  int64_t size() const { return size_; }
  bool has_text() const { return kind_ != Kind::Tokens; }

  // Throws InputError naming the first character that is not in the vocabulary.
  std::vector<int32_t> encode(std::string_view text) const;
  std::string decode(std::span<const int32_t> tokens) const;

  nlohmann::json to_json() const;
  // Throws InputError when the JSON is not one that to_json() writes.
  static Vocabulary from_json(const nlohmann::json& json);

  bool operator==(const Vocabulary& other) const {
    return kind_ == other.kind_ && size_ == other.size_ && chars_ == other.chars_;
  }

 private:
  Kind kind_ = Kind::Bytes;
  int64_t size_ = 256;
  std::string chars_;                 // Chars only: token id -> byte
  std::array<int32_t, 256> ids_{};    // Chars only: byte -> token id, -1 if absent
};

std::string vocabulary_kind_name(Vocabulary::Kind kind);  // chars | bytes | tokens

}  // namespace tessera
