// Parameter name mapping between Tessera and Hugging Face transformers (see hf_names.h).
#include "runtime/interop/hf_names.h"

#include <utility>
#include <vector>

#include "core/error.h"

namespace tessera {
namespace {

// Each architecture's names differ from Tessera's only by a prefix per module.
using PrefixTable = std::vector<std::pair<std::string, std::string>>;  // {tessera, transformers}

const PrefixTable& prefixes(const ModelConfig& m) {
  static const PrefixTable gpt = {{"wte.", "transformer.wte."},
                                  {"wpe.", "transformer.wpe."},
                                  {"h.", "transformer.h."},
                                  {"ln_f.", "transformer.ln_f."},
                                  {"lm_head.", "lm_head."}};
  static const PrefixTable llama = {{"wte.", "model.embed_tokens."},
                                    {"h.", "model.layers."},
                                    {"ln_f.", "model.norm."},
                                    {"lm_head.", "lm_head."}};
  hf_architecture(m);  // refuses an arch without a counterpart
  return m.arch == "gpt" ? gpt : llama;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// GPT-2's Conv1D layers keep their weight as [in, out].
bool conv1d_weight(const ModelConfig& m, const std::string& name) {
  if (m.arch != "gpt") return false;
  for (const char* s : {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight"}) {
    if (ends_with(name, s)) return true;
  }
  return false;
}

std::optional<HfName> swap_prefix(const ModelConfig& m, const std::string& name, bool to_hf) {
  for (const auto& [ours, theirs] : prefixes(m)) {
    const std::string& from = to_hf ? ours : theirs;
    const std::string& to = to_hf ? theirs : ours;
    if (name.rfind(from, 0) == 0) {
      const std::string mapped = to + name.substr(from.size());
      return HfName{mapped, conv1d_weight(m, name)};
    }
  }
  return std::nullopt;
}

}  // namespace

std::string hf_architecture(const ModelConfig& m) {
  if (m.arch == "gpt") return "GPT2LMHeadModel";
  if (m.arch == "llama") return "LlamaForCausalLM";
  TESSERA_REQUIRE(false, "model.arch {} has no Hugging Face counterpart (gpt and llama have)", m.arch);
  return {};
}

std::optional<HfName> hf_name(const ModelConfig& m, const std::string& tessera_name) {
  return swap_prefix(m, tessera_name, true);
}

std::optional<HfName> tessera_name_from_hf(const ModelConfig& m, const std::string& hf) {
  return swap_prefix(m, hf, false);
}

}  // namespace tessera
