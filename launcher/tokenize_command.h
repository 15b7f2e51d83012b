// `tessera tokenize TEXT --out DIR`: trains a SentencePiece BPE tokenizer on a text file (or
// takes a given .model) and writes llm.c token files for training.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace tessera {

struct TokenizeOptions {
  std::string text;          // UTF-8 text to encode (and to train on)
  std::string out;           // output directory: tokenizer.model, train.bin, val.bin
  std::string model;         // an existing .model instead of training one
  int64_t vocab_size = 2000; // pieces of a trained model
  double val_fraction = 0.1; // the last part of the text becomes val.bin
};

CLI::App* add_tokenize_command(CLI::App& app, TokenizeOptions& options);

// Writes the files; 0 on success. Bad input throws InputError before anything is written.
int run_tokenize(const TokenizeOptions& options);

}  // namespace tessera
