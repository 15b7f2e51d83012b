// How a run's or a checkpoint's text turns into token ids and back: its SentencePiece tokenizer when the
// run that saved it had data.tokenizer, else its character or byte vocabulary. For generate.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"

namespace tessera {

struct TextCodec {
  std::string description;  // "tokenizer runs/x/tokenizer.model", "chars vocabulary"
  std::function<std::vector<int32_t>(const std::string&)> encode;
  std::function<std::string(const std::vector<int32_t>&)> decode;
};

// InputError when the checkpoint has neither a tokenizer nor a text vocabulary (token ids
// with no text form), or its tokenizer file is gone or does not match the model's vocabulary.
TextCodec text_codec_for_checkpoint(const std::string& step_dir, int64_t model_vocab);

}  // namespace tessera
