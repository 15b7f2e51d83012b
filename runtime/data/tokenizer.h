// A SentencePiece tokenizer (the library and model format Llama uses): text <-> token ids,
// and training a BPE model on a text file. Byte fallback is on for the models trained here, so
// any UTF-8 text (and any byte) round-trips through encode/decode. libsentencepiece is reached
// through a module loaded on first use (runtime/data/sentencepiece/sentencepiece_module.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

namespace tessera {

class Tokenizer {
 public:
  // Loads a .model file; InputError naming the file when it is missing or not a model.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  const std::string& path() const { return path_; }
  int64_t vocab_size() const { return size_; }
  int bos_id() const { return bos_; }  // -1 when the model has none
  int eos_id() const { return eos_; }
  std::vector<int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  std::string path_;
  void* processor_ = nullptr;  // owned, in the SentencePiece module (tokenizer.cc says why)
  int size_ = 0, bos_ = -1, eos_ = -1;
};

struct BpeTrainOptions {
  int64_t vocab_size = 2000;
  // SentencePiece reads at most this many sentences (lines) of the text; 0 = all.
  int64_t input_sentence_size = 0;
  int threads = 1;
};

// Trains a BPE model (byte fallback, digits split, Llama's unk/bos/eos = 0/1/2) on a UTF-8 text
// file and writes <model_prefix>.model and <model_prefix>.vocab. InputError on a missing text
// or a vocabulary too large for it.
void train_bpe_tokenizer(const std::string& text_path, const std::string& model_prefix, const BpeTrainOptions& options);

// With data.tokenizer set: InputError unless the file is a SentencePiece model of
// model.vocab pieces. Checked when a run loads its data (like data.path: the training session
// does), not when a config is validated, so configs naming files made later still validate.
void check_data_tokenizer(const Config& config);

}  // namespace tessera
