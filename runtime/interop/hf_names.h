// The one mapping between Tessera's parameter names and Hugging Face transformers' names:
// gpt <-> GPT2LMHeadModel (Conv1D weights stored [in, out], so the matrices are transposed),
// llama <-> LlamaForCausalLM (nn.Linear [out, in], the same layout as Tessera's). Export,
// import and the parity fixtures all go through it.
#pragma once

#include <optional>
#include <string>

#include "core/config.h"

namespace tessera {

// A parameter's name in the other naming, and whether its 2-D data is transposed there.
struct HfName {
  std::string name;
  bool transposed = false;
};

// "GPT2LMHeadModel" or "LlamaForCausalLM"; throws InputError for an arch with no counterpart.
std::string hf_architecture(const ModelConfig& model);

// Tessera -> transformers ("h.0.self_attn.q_proj.weight" -> "model.layers.0.self_attn.q_proj.weight").
// nullopt for a name outside the architecture's parameters.
std::optional<HfName> hf_name(const ModelConfig& model, const std::string& tessera_name);

// transformers -> Tessera, the inverse of hf_name.
std::optional<HfName> tessera_name_from_hf(const ModelConfig& model, const std::string& hf_name);

}  // namespace tessera
