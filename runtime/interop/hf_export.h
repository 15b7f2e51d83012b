// `tessera export CKPT --hf DIR`: a checkpoint as a Hugging Face model directory that
// transformers' AutoModelForCausalLM.from_pretrained loads with every weight accounted for:
// config.json, model.safetensors (transformers' names and layouts, runtime/interop/hf_names.h)
// and generation_config.json. gpt -> GPT2LMHeadModel, llama -> LlamaForCausalLM.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/config.h"

namespace tessera {

// transformers' config.json for a model of `vocab_size` tokens.
nlohmann::json hf_config_json(const ModelConfig& model, int64_t vocab_size);

struct HfExportResult {
  std::string architecture;
  int tensors = 0;
  bool tokenizer = false;  // tokenizer files written
};

// Writes the three files into out_dir (created), and with a SentencePiece `tokenizer_model`
// (the run's data.tokenizer; empty: none) also tokenizer.model and tokenizer_config.json,
// which transformers loads as its LlamaTokenizer with the same ids. Everything is read and
// checked before the first file is written: an arch or shape transformers cannot express, or
// a tokenizer whose size is not the model's, is an InputError and leaves out_dir untouched.
HfExportResult export_hf(const std::string& step_dir, const std::string& out_dir,
                         const std::string& tokenizer_model = "");

}  // namespace tessera
