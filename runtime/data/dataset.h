// The training data of a run: a vocabulary and the train/val token streams, loaded from a
// text file (chars or bytes vocabulary) or llm.c token files (an integer vocab size).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "runtime/data/vocabulary.h"

namespace tessera {

struct Dataset {
  Vocabulary vocab;
  std::vector<int32_t> train;
  std::vector<int32_t> val;  // empty when data.val_fraction is 0 and there is no data.val_path
};

// vocab_spec is model.vocab: "chars" or "bytes" for text, an integer (or "bytes") for tokens.
// Without data.val_path, the first (1 - val_fraction) of the tokens are the train split and
// the rest the val split, as nanoGPT does. Throws InputError naming the file or config field
// and the rule: a missing or empty file, a token outside the vocabulary, or a split with
// fewer than seq_length + 1 tokens.
Dataset load_dataset(const DataConfig& data, const std::string& vocab_spec, int64_t seq_length);

// The vocabulary size model.vocab gives, without loading the data: 256 for bytes, the distinct
// characters of data.path for chars (InputError when it cannot be read), else the number.
int64_t vocab_size_of(const std::string& vocab_spec, const DataConfig& data);

}  // namespace tessera
