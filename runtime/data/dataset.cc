// Loading text and token-file datasets and splitting them into train and val streams.
#include "runtime/data/dataset.h"

#include <charconv>

#include "runtime/data/read_file.h"
#include "runtime/data/token_file.h"
#include "core/error.h"

namespace tessera {
namespace {

// An integer spec ("50257") as a vocab size, or 0 when the spec is not an integer.
int64_t parse_vocab_size(const std::string& spec) {
  int64_t size = 0;
  const auto [end, ec] = std::from_chars(spec.data(), spec.data() + spec.size(), size);
  if (ec != std::errc() || end != spec.data() + spec.size()) return 0;
  TESSERA_REQUIRE(size > 0, "model.vocab: {} must be positive", size);
  return size;
}

std::vector<int32_t> load_tokens(const std::string& path, const Vocabulary& vocab) {
  std::vector<int32_t> tokens = read_token_file(path);
  for (size_t i = 0; i < tokens.size(); ++i) {
    TESSERA_REQUIRE(tokens[i] < vocab.size(),
                    "{}: token {} at position {} is outside the vocabulary (model.vocab = {})",
                    path, tokens[i], i, vocab.size());
  }
  return tokens;
}

void require_split_length(const std::string& path, const char* split, size_t length,
                          int64_t seq_length) {
  TESSERA_REQUIRE(static_cast<int64_t>(length) >= seq_length + 1,
                  "{}: the {} split has {} tokens, fewer than seq_length + 1 = {}", path, split,
                  length, seq_length + 1);
}

}  // namespace

Dataset load_dataset(const DataConfig& data, const std::string& vocab_spec, int64_t seq_length) {
  TESSERA_REQUIRE(seq_length > 0, "model.seq_length: {} must be positive", seq_length);
  TESSERA_REQUIRE(data.val_fraction >= 0.0 && data.val_fraction < 1.0,
                  "data.val_fraction: {} is outside [0, 1)", data.val_fraction);
  const int64_t vocab_size = parse_vocab_size(vocab_spec);
  TESSERA_REQUIRE(vocab_size > 0 || vocab_spec == "chars" || vocab_spec == "bytes",
                  "model.vocab: '{}' is not chars, bytes or a positive integer", vocab_spec);

  Dataset dataset;
  std::vector<int32_t> all;
  if (data.format == "text") {
    TESSERA_REQUIRE(vocab_size == 0, "model.vocab: a text file needs chars or bytes, not {} "
                    "(integer vocabularies come with data.format: tokens)", vocab_spec);
    TESSERA_REQUIRE(data.val_path.empty(),
                    "data.val_path: only data.format: tokens takes a separate validation file");
    const std::string text = read_file(data.path);
    TESSERA_REQUIRE(!text.empty(), "{}: the file is empty", data.path);
    dataset.vocab = vocab_spec == "chars" ? Vocabulary::chars(text) : Vocabulary::bytes();
    all = dataset.vocab.encode(text);
  } else {
    TESSERA_REQUIRE(data.format == "tokens", "data.format: '{}' is not text or tokens",
                    data.format);
    TESSERA_REQUIRE(vocab_spec != "chars", "model.vocab: chars needs data.format: text; a token "
                    "file needs an integer vocab size");
    dataset.vocab = vocab_size > 0 ? Vocabulary::tokens(vocab_size) : Vocabulary::bytes();
    all = load_tokens(data.path, dataset.vocab);
    if (!data.val_path.empty()) {
      dataset.train = std::move(all);
      dataset.val = load_tokens(data.val_path, dataset.vocab);
      require_split_length(data.path, "train", dataset.train.size(), seq_length);
      require_split_length(data.val_path, "val", dataset.val.size(), seq_length);
      return dataset;
    }
  }

  // int(n * 0.9) as in nanoGPT's prepare.py, so the same file splits at the same token.
  const auto n_train = static_cast<size_t>(static_cast<double>(all.size()) *
                                           (1.0 - data.val_fraction));
  dataset.val.assign(all.begin() + static_cast<std::ptrdiff_t>(n_train), all.end());
  all.resize(n_train);
  dataset.train = std::move(all);
  require_split_length(data.path, "train", dataset.train.size(), seq_length);
  if (data.val_fraction > 0.0) {
    require_split_length(data.path, "val", dataset.val.size(), seq_length);
  }
  return dataset;
}

int64_t vocab_size_of(const std::string& vocab_spec, const DataConfig& data) {
  if (vocab_spec == "bytes") return 256;
  if (vocab_spec == "chars") return static_cast<int64_t>(Vocabulary::chars(read_file(data.path)).size());
  return std::stoll(vocab_spec);  // validated by the config loader
}

}  // namespace tessera
