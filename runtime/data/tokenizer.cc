// SentencePiece tokenizer and BPE training through the SentencePiece module (see tokenizer.h
// and data/sentencepiece/sentencepiece_module.cc for why it is a dlopened module).
#include "runtime/data/tokenizer.h"

#include <dlfcn.h>

#include <filesystem>
#include <unordered_map>

#include "core/error.h"

namespace tessera {
namespace {

// The module's entry points, resolved once.
struct Module {
  void* (*open)(const std::string*, std::string*);
  void (*close)(void*);
  void (*info)(void*, int*, int*, int*);
  bool (*encode)(void*, const std::string*, std::vector<int>*, std::string*);
  bool (*decode)(void*, const std::vector<int>*, std::string*, std::string*);
  bool (*train)(const std::unordered_map<std::string, std::string>*, std::string*);
};

template <class F>
void resolve(void* handle, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(handle, name));
  TESSERA_CHECK(fn != nullptr, "SentencePiece module: no symbol {}", name);
}

Module load_module() {
  std::string tried;
  void* handle = nullptr;
  for (const char* path : {TESSERA_SENTENCEPIECE_BUILD, TESSERA_SENTENCEPIECE_INSTALLED}) {
    if (!std::filesystem::exists(path)) continue;
    // DEEPBIND: the module and libsentencepiece bind protobuf to their own copy, not ONNX's.
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle != nullptr) break;
    tried += std::string(" ") + dlerror();
  }
  TESSERA_CHECK(handle != nullptr, "cannot load the SentencePiece module ({} or {}):{}", TESSERA_SENTENCEPIECE_BUILD,
                TESSERA_SENTENCEPIECE_INSTALLED, tried.empty() ? " not found" : tried);
  Module m{};
  resolve(handle, "tessera_spm_open", m.open);
  resolve(handle, "tessera_spm_close", m.close);
  resolve(handle, "tessera_spm_info", m.info);
  resolve(handle, "tessera_spm_encode", m.encode);
  resolve(handle, "tessera_spm_decode", m.decode);
  resolve(handle, "tessera_spm_train", m.train);
  return m;  // the module stays loaded for the process
}

const Module& module() {
  static const Module m = load_module();
  return m;
}

}  // namespace

Tokenizer::Tokenizer(const std::string& model_path) : path_(model_path) {
  TESSERA_REQUIRE(std::filesystem::exists(model_path), "{}: tokenizer model not found", model_path);
  std::string error;
  processor_ = module().open(&model_path, &error);
  TESSERA_REQUIRE(processor_ != nullptr, "{}: not a SentencePiece model: {}", model_path, error);
  module().info(processor_, &size_, &bos_, &eos_);
}

Tokenizer::~Tokenizer() {
  if (processor_ != nullptr) module().close(processor_);
}

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  std::string error;
  TESSERA_CHECK(module().encode(processor_, &text, &ids, &error), "{}: encode failed: {}", path_, error);
  return {ids.begin(), ids.end()};
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  for (int32_t id : ids) {
    TESSERA_REQUIRE(id >= 0 && id < size_, "{}: token id {} is outside the vocabulary of {}", path_, id, size_);
  }
  const std::vector<int> in(ids.begin(), ids.end());
  std::string text, error;
  TESSERA_CHECK(module().decode(processor_, &in, &text, &error), "{}: decode failed: {}", path_, error);
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
  std::string error;
  TESSERA_REQUIRE(module().train(&args, &error), "{}: training a BPE tokenizer of {} pieces failed: {}", text_path,
                  o.vocab_size, error);
}

void check_data_tokenizer(const Config& config) {
  if (config.data.tokenizer.empty()) return;
  const int64_t pieces = Tokenizer(config.data.tokenizer).vocab_size();
  TESSERA_REQUIRE(std::to_string(pieces) == config.model.vocab,
                  "{}: data.tokenizer {} has {} pieces, but model.vocab is {}", config.source, config.data.tokenizer,
                  pieces, config.model.vocab);
}

}  // namespace tessera
