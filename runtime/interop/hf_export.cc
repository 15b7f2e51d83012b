// Export of a checkpoint as a Hugging Face model directory (see hf_export.h).
#include "runtime/interop/hf_export.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/data/tokenizer.h"
#include "runtime/interop/hf_names.h"
#include "runtime/interop/hf_tensors.h"
#include "runtime/io/safetensors.h"

namespace tessera {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json gpt2_config(const ModelConfig& m, int64_t vocab) {
  TESSERA_REQUIRE(m.head_dim == 0 || int64_t{m.head_dim} * m.num_attention_heads == m.hidden_size,
                  "export --hf: GPT2LMHeadModel needs heads x head_dim = hidden_size; this model has {} x {} != {} "
                  "(pruned heads)",
                  m.num_attention_heads, m.head_dim, m.hidden_size);
  return {{"architectures", {"GPT2LMHeadModel"}},
          {"model_type", "gpt2"},
          {"vocab_size", vocab},
          {"n_positions", m.seq_length},
          {"n_ctx", m.seq_length},
          {"n_embd", m.hidden_size},
          {"n_layer", m.num_layers},
          {"n_head", m.num_attention_heads},
          {"n_inner", ffn_size(m)},
          // Tessera's GELU is the tanh approximation, which transformers calls gelu_new.
          {"activation_function", "gelu_new"},
          {"layer_norm_epsilon", 1e-5},
          {"initializer_range", m.init_std},
          {"resid_pdrop", 0.0},
          {"embd_pdrop", 0.0},
          {"attn_pdrop", 0.0},
          {"scale_attn_weights", true},
          // Tessera's GPT head has its own weight.
          {"tie_word_embeddings", false},
          // Tessera's vocabularies have no BOS/EOS (GPT-2's default 50256 is not a token here).
          {"bos_token_id", nullptr},
          {"eos_token_id", nullptr},
          {"dtype", "float32"}};
}

json llama_config(const ModelConfig& m, int64_t vocab) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", vocab},
          {"hidden_size", m.hidden_size},
          {"intermediate_size", ffn_size(m)},
          {"num_hidden_layers", m.num_layers},
          {"num_attention_heads", m.num_attention_heads},
          {"num_key_value_heads", query_groups(m)},
          {"head_dim", attention_head_dim(m)},
          {"max_position_embeddings", m.seq_length},
          {"rms_norm_eps", m.norm_epsilon},
          {"rope_theta", m.rotary_base},
          {"hidden_act", "silu"},
          {"attention_bias", false},
          {"mlp_bias", false},
          {"attention_dropout", 0.0},
          {"initializer_range", m.init_std},
          {"tie_word_embeddings", !m.untie_embeddings_and_output_weights},
          // Tessera generates without stopping at an end-of-sequence token; so must transformers.
          {"bos_token_id", nullptr},
          {"eos_token_id", nullptr},
          {"dtype", "float32"}};
}

void write_json(const fs::path& path, const json& value) {
  std::ofstream out(path);
  out << value.dump(2) << "\n";
  out.close();
  TESSERA_REQUIRE(out.good(), "export --hf: cannot write {}", path.string());
}

}  // namespace

json hf_config_json(const ModelConfig& m, int64_t vocab) {
  hf_architecture(m);
  return m.arch == "gpt" ? gpt2_config(m, vocab) : llama_config(m, vocab);
}

HfExportResult export_hf(const std::string& step_dir, const std::string& out_dir, const std::string& tokenizer_model) {
  CheckpointReader reader(step_dir);
  const Manifest& manifest = reader.manifest();
  TESSERA_REQUIRE(manifest.model.has_value(), "{}: the manifest has no model section (saved by an older Tessera); "
                  "export --hf needs the model's shape", step_dir);
  const ModelConfig& m = *manifest.model;
  HfExportResult r{hf_architecture(m), 0};
  TESSERA_REQUIRE(!m.vocab.empty(), "{}: no vocabulary size", step_dir);
  std::map<std::string, Tensor> tensors;
  for (auto& [name, tensor] : read_global_parameters(reader)) {
    const auto hf = hf_name(m, name);
    TESSERA_REQUIRE(hf.has_value(), "{}: parameter {} has no {} counterpart", step_dir, name, r.architecture);
    tensors.emplace(hf->name, hf->transposed ? transpose_2d(tensor) : std::move(tensor));
  }
  const auto wte = tensors.find(hf_name(m, "wte.weight")->name);
  TESSERA_REQUIRE(wte != tensors.end(), "{}: no token embedding wte.weight", step_dir);
  const json config = hf_config_json(m, wte->second.dim(0));
  check_hf_tensors(config, tensors, step_dir);
  r.tensors = static_cast<int>(tensors.size());
  if (!tokenizer_model.empty()) {
    const int64_t pieces = Tokenizer(tokenizer_model).vocab_size();
    TESSERA_REQUIRE(pieces == wte->second.dim(0), "{}: the tokenizer {} has {} pieces, the model's vocabulary {}",
                    step_dir, tokenizer_model, pieces, wte->second.dim(0));
  }

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  TESSERA_REQUIRE(!ec, "export --hf: cannot create {}: {}", out_dir, ec.message());
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_json(fs::path(out_dir) / "config.json", config);
  write_json(fs::path(out_dir) / "generation_config.json", {{"_from_model_config", true}});
  if (!tokenizer_model.empty()) {
    fs::copy_file(tokenizer_model, fs::path(out_dir) / "tokenizer.model", fs::copy_options::overwrite_existing, ec);
    TESSERA_REQUIRE(!ec, "export --hf: cannot copy {}: {}", tokenizer_model, ec.message());
    // Tessera's token files have no BOS/EOS and its models no space prefix: the tokenizer must
    // add neither, so transformers' ids equal Tessera's.
    write_json(fs::path(out_dir) / "tokenizer_config.json",
               {{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", false}, {"add_eos_token", false},
                {"legacy", false}, {"add_prefix_space", false}, {"bos_token", "<s>"}, {"eos_token", "</s>"},
                {"unk_token", "<unk>"}, {"model_max_length", m.seq_length}});
    r.tokenizer = true;
  }
  return r;
}

}  // namespace tessera
