// What a Hugging Face model directory holds for a Tessera architecture: the model config read
// from transformers' config.json, the tensors (names and shapes) its weights file must have,
// and the check that a set of tensors is exactly that.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "runtime/tensor.h"

namespace tessera {

struct HfModel {
  ModelConfig model;
  int64_t vocab_size = 0;
};

// config.json (as transformers writes it for GPT2LMHeadModel or LlamaForCausalLM) as a
// Tessera model. InputError "<where>: ..." for another architecture or a setting Tessera does
// not implement (biases in a Llama, another activation, rope scaling, ...).
HfModel model_from_hf_config(const nlohmann::json& config, const std::string& where);

// transformers' parameter names and shapes for the model.
std::map<std::string, Shape> expected_hf_tensors(const ModelConfig& model, int64_t vocab_size);

// InputError "<where>: ..." naming the first missing, unexpected or misshapen tensor.
void check_hf_tensors(const nlohmann::json& config, const std::map<std::string, Tensor>& tensors,
                      const std::string& where);

// A row-major [r, c] tensor as [c, r].
Tensor transpose_2d(const Tensor& t);

}  // namespace tessera
