// How a run's or a checkpoint's text turns into token ids and back: its SentencePiece tokenizer when the
// run that saved it had data.tokenizer, else its character or byte vocabulary. For generate
// and serve.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "runtime/data/vocabulary.h"

namespace tessera {

struct TextCodec {
  std::string kind;         // chars | bytes | sentencepiece
  std::string description;  // "tokenizer runs/x/tokenizer.model", "chars vocabulary"
  int64_t vocab_size = 0;
  // encode throws InputError for text the vocabulary cannot write (a chars vocabulary's
  // missing character); a tokenizer with byte fallback writes any text.
  std::function<std::vector<int32_t>(const std::string&)> encode;
  std::function<std::string(const std::vector<int32_t>&)> decode;
  // What one token adds to a text after other tokens (a served completion is streamed token by
  // token): possibly part of a UTF-8 character.
  std::function<std::string(int32_t)> token_text;
};

// InputError when the checkpoint has neither a tokenizer nor a text vocabulary (token ids
// with no text form), or its tokenizer file is gone or does not match the model's vocabulary.
TextCodec text_codec_for_checkpoint(const std::string& step_dir, int64_t model_vocab);

// A character or byte vocabulary's codec (a tokens vocabulary has no text: encode and decode
// throw).
TextCodec text_codec_for_vocabulary(const Vocabulary& vocabulary);

}  // namespace tessera
