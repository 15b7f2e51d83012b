// `tessera tokenize` (see tokenize_command.h).
#include "launcher/tokenize_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "runtime/data/read_file.h"
#include "runtime/data/token_file.h"
#include "runtime/data/tokenizer.h"

namespace tessera {
namespace fs = std::filesystem;

CLI::App* add_tokenize_command(CLI::App& app, TokenizeOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Train a SentencePiece BPE tokenizer on a text file (or use --model) and write llm.c token "
                  "files: DIR/tokenizer.model, DIR/train.bin, DIR/val.bin (data.format: tokens, data.tokenizer)");
  cmd->add_option("text", o.text, "UTF-8 text file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", o.out, "Output directory")->required();
  cmd->add_option("--vocab-size", o.vocab_size, "Pieces of the trained BPE model (256 of them are bytes)")
      ->check(CLI::Range(int64_t{260}, int64_t{65536}))
      ->capture_default_str();
  cmd->add_option("--model", o.model, "An existing SentencePiece .model to use instead of training one")
      ->check(CLI::ExistingFile);
  cmd->add_option("--val-fraction", o.val_fraction, "Fraction of the tokens, from the end, written to val.bin")
      ->check(CLI::Range(0.0, 0.5))
      ->capture_default_str();
  return cmd;
}

int run_tokenize(const TokenizeOptions& o) {
  std::error_code ec;
  fs::create_directories(o.out, ec);
  TESSERA_REQUIRE(!ec, "--out {}: cannot create: {}", o.out, ec.message());
  const std::string model_path = (fs::path(o.out) / "tokenizer.model").string();
  if (o.model.empty()) {
    BpeTrainOptions train;
    train.vocab_size = o.vocab_size;
    train_bpe_tokenizer(o.text, (fs::path(o.out) / "tokenizer").string(), train);
  } else if (!fs::equivalent(o.model, model_path, ec)) {
    fs::copy_file(o.model, model_path, fs::copy_options::overwrite_existing, ec);
    TESSERA_REQUIRE(!ec, "{}: cannot copy to {}: {}", o.model, model_path, ec.message());
  }
  const Tokenizer tokenizer(model_path);
  TESSERA_REQUIRE(tokenizer.vocab_size() <= 65536, "{}: {} pieces do not fit llm.c's uint16 tokens", model_path,
                  tokenizer.vocab_size());
  const std::vector<int32_t> ids = tokenizer.encode(read_file(o.text));
  const auto val = static_cast<int64_t>(static_cast<double>(ids.size()) * o.val_fraction);
  const auto split = ids.end() - val;
  write_token_file((fs::path(o.out) / "train.bin").string(), {ids.begin(), split});
  if (val > 0) write_token_file((fs::path(o.out) / "val.bin").string(), {split, ids.end()});
  std::cout << fmt::format("{}: {} pieces; {} tokens ({:.2f} bytes per token): {} train, {} val in {}\n",
                           model_path, tokenizer.vocab_size(), ids.size(),
                           static_cast<double>(fs::file_size(o.text)) / std::max<size_t>(ids.size(), 1),
                           ids.size() - val, val, o.out);
  return 0;
}

}  // namespace tessera
