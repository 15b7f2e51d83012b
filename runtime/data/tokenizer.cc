// SentencePiece tokenizer wrapper and BPE training (see tokenizer.h).
#include "runtime/data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <unordered_map>

#include "core/error.h"

namespace tessera {

Tokenizer::Tokenizer(const std::string& model_path)
    : path_(model_path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  TESSERA_REQUIRE(std::filesystem::exists(model_path), "{}: tokenizer model not found", model_path);
  const auto status = sp_->Load(model_path);
  TESSERA_REQUIRE(status.ok(), "{}: not a SentencePiece model: {}", model_path, status.ToString());
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int Tokenizer::bos_id() const { return sp_->bos_id(); }
int Tokenizer::eos_id() const { return sp_->eos_id(); }

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  TESSERA_CHECK(status.ok(), "{}: encode failed: {}", path_, status.ToString());
  return {ids.begin(), ids.end()};
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  for (int32_t id : ids) {
    TESSERA_REQUIRE(id >= 0 && id < vocab_size(), "{}: token id {} is outside the vocabulary of {}", path_, id,
                    vocab_size());
  }
  std::string text;
  const auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  TESSERA_CHECK(status.ok(), "{}: decode failed: {}", path_, status.ToString());
  return text;
}

void train_bpe_tokenizer(const std::string& text_path, const std::string& model_prefix, const BpeTrainOptions& o) {
  TESSERA_REQUIRE(std::filesystem::exists(text_path), "{}: text file not found", text_path);
  TESSERA_REQUIRE(o.vocab_size >= 260, "tokenizer vocab size {} must be at least 260 (256 byte pieces + specials)",
                  o.vocab_size);
  // Llama's settings: BPE with byte fallback (no unknown characters), digits split, no
  // normalisation so decode(encode(text)) == text, whitespace kept as is. A map rather than a
  // flag string, so paths with spaces work.
  std::unordered_map<std::string, std::string> args = {
      {"input", text_path}, {"model_prefix", model_prefix}, {"model_type", "bpe"},
      {"vocab_size", std::to_string(o.vocab_size)}, {"byte_fallback", "true"}, {"split_digits", "true"},
      {"character_coverage", "1.0"}, {"normalization_rule_name", "identity"}, {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"}, {"allow_whitespace_only_pieces", "true"}, {"max_sentence_length", "1000000"},
      {"num_threads", std::to_string(o.threads)}, {"minloglevel", "2"}, {"unk_id", "0"}, {"bos_id", "1"},
      {"eos_id", "2"}, {"pad_id", "-1"}};
  if (o.input_sentence_size > 0) {
    args["input_sentence_size"] = std::to_string(o.input_sentence_size);
    args["shuffle_input_sentence"] = "false";
  }
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  TESSERA_REQUIRE(status.ok(), "{}: training a BPE tokenizer of {} pieces failed: {}", text_path, o.vocab_size,
                  status.ToString());
}

}  // namespace tessera
