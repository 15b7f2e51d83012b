// Hugging Face configs and weight sets for gpt and llama (see hf_tensors.h).
#include "runtime/interop/hf_tensors.h"

#include "core/error.h"
#include "partitioner/layer_graph.h"

namespace tessera {
namespace {
using nlohmann::json;

// A config.json field, required, of the given kind.
struct ConfigFields {
  const json& config;
  const std::string& where;
  int64_t integer(const char* key) const {
    TESSERA_REQUIRE(config.contains(key) && config.at(key).is_number_integer() && config.at(key).get<int64_t>() > 0,
                    "{}: \"{}\" must be a positive integer", where, key);
    return config.at(key).get<int64_t>();
  }
  double number(const char* key, double fallback) const {
    if (!config.contains(key) || config.at(key).is_null()) return fallback;
    TESSERA_REQUIRE(config.at(key).is_number(), "{}: \"{}\" must be a number", where, key);
    return config.at(key).get<double>();
  }
  bool flag(const char* key, bool fallback) const {
    if (!config.contains(key) || config.at(key).is_null()) return fallback;
    TESSERA_REQUIRE(config.at(key).is_boolean(), "{}: \"{}\" must be true or false", where, key);
    return config.at(key).get<bool>();
  }
  std::string text(const char* key, const std::string& fallback) const {
    if (!config.contains(key) || config.at(key).is_null()) return fallback;
    TESSERA_REQUIRE(config.at(key).is_string(), "{}: \"{}\" must be a string", where, key);
    return config.at(key).get<std::string>();
  }
};

HfModel gpt2_model(const ConfigFields& f) {
  HfModel h;
  ModelConfig& m = h.model;
  m.arch = "gpt";
  m.num_layers = static_cast<int>(f.integer("n_layer"));
  m.hidden_size = static_cast<int>(f.integer("n_embd"));
  m.num_attention_heads = static_cast<int>(f.integer("n_head"));
  m.ffn_hidden_size = f.config.contains("n_inner") && !f.config.at("n_inner").is_null()
                          ? static_cast<int>(f.integer("n_inner"))
                          : 4 * m.hidden_size;
  m.seq_length = static_cast<int>(f.integer("n_positions"));
  const std::string act = f.text("activation_function", "gelu_new");
  TESSERA_REQUIRE(act == "gelu_new" || act == "gelu_pytorch_tanh", "{}: activation_function \"{}\": Tessera's GPT uses "
                  "the tanh GELU (gelu_new)", f.where, act);
  TESSERA_REQUIRE(f.number("layer_norm_epsilon", 1e-5) == 1e-5, "{}: layer_norm_epsilon must be 1e-5", f.where);
  TESSERA_REQUIRE(!f.flag("tie_word_embeddings", true), "{}: tie_word_embeddings: Tessera's GPT head is untied; "
                  "a tied GPT-2 is not supported", f.where);
  h.vocab_size = f.integer("vocab_size");
  return h;
}

HfModel llama_model(const ConfigFields& f) {
  HfModel h;
  ModelConfig& m = h.model;
  m.arch = "llama";
  m.normalization = "rmsnorm";
  m.num_layers = static_cast<int>(f.integer("num_hidden_layers"));
  m.hidden_size = static_cast<int>(f.integer("hidden_size"));
  m.num_attention_heads = static_cast<int>(f.integer("num_attention_heads"));
  m.num_query_groups = f.config.contains("num_key_value_heads") && !f.config.at("num_key_value_heads").is_null()
                           ? static_cast<int>(f.integer("num_key_value_heads"))
                           : m.num_attention_heads;
  m.ffn_hidden_size = static_cast<int>(f.integer("intermediate_size"));
  m.seq_length = static_cast<int>(f.integer("max_position_embeddings"));
  if (f.config.contains("head_dim") && !f.config.at("head_dim").is_null()) {
    const int64_t d = f.integer("head_dim");
    if (d * m.num_attention_heads != m.hidden_size) m.head_dim = static_cast<int>(d);
  }
  m.norm_epsilon = static_cast<float>(f.number("rms_norm_eps", 1e-6));
  // transformers >= 5 keeps theta under rope_parameters; older configs at the top level.
  double theta = f.number("rope_theta", 10000.0);
  if (f.config.contains("rope_parameters") && f.config.at("rope_parameters").is_object()) {
    const json& rp = f.config.at("rope_parameters");
    TESSERA_REQUIRE(rp.value("rope_type", std::string("default")) == "default",
                    "{}: rope_parameters.rope_type \"{}\": only the default rotary embedding is implemented", f.where,
                    rp.value("rope_type", std::string()));
    if (rp.contains("rope_theta")) theta = rp.at("rope_theta").get<double>();
  }
  TESSERA_REQUIRE(!f.config.contains("rope_scaling") || f.config.at("rope_scaling").is_null(),
                  "{}: rope_scaling: only the default rotary embedding is implemented", f.where);
  m.rotary_base = static_cast<float>(theta);
  m.untie_embeddings_and_output_weights = !f.flag("tie_word_embeddings", false);
  TESSERA_REQUIRE(f.text("hidden_act", "silu") == "silu", "{}: hidden_act must be silu", f.where);
  TESSERA_REQUIRE(!f.flag("attention_bias", false) && !f.flag("mlp_bias", false),
                  "{}: attention_bias / mlp_bias: Tessera's llama has no biases", f.where);
  TESSERA_REQUIRE(m.num_attention_heads % query_groups(m) == 0, "{}: num_key_value_heads {} does not divide "
                  "num_attention_heads {}", f.where, query_groups(m), m.num_attention_heads);
  h.vocab_size = f.integer("vocab_size");
  return h;
}

}  // namespace

HfModel model_from_hf_config(const json& config, const std::string& where) {
  TESSERA_REQUIRE(config.is_object(), "{}: not a JSON object", where);
  const ConfigFields f{config, where};
  const std::string type = f.text("model_type", "");
  HfModel h;
  if (type == "gpt2") {
    h = gpt2_model(f);
  } else if (type == "llama") {
    h = llama_model(f);
  } else {
    TESSERA_REQUIRE(false, "{}: model_type \"{}\" is not an architecture Tessera implements (gpt2, llama)", where,
                    type);
  }
  h.model.vocab = std::to_string(h.vocab_size);
  h.model.init_std = static_cast<float>(f.number("initializer_range", 0.02));
  return h;
}

std::map<std::string, Shape> expected_hf_tensors(const ModelConfig& m, int64_t V) {
  const int64_t C = m.hidden_size, F = ffn_size(m), D = attention_head_dim(m), A = m.num_attention_heads * D;
  std::map<std::string, Shape> t;
  if (m.arch == "gpt") {
    t["transformer.wte.weight"] = {V, C};
    t["transformer.wpe.weight"] = {m.seq_length, C};
    for (int i = 0; i < m.num_layers; ++i) {
      const std::string p = "transformer.h." + std::to_string(i) + ".";
      for (const char* ln : {"ln_1.", "ln_2."}) t[p + ln + "weight"] = t[p + ln + "bias"] = {C};
      t[p + "attn.c_attn.weight"] = {C, 3 * A};
      t[p + "attn.c_attn.bias"] = {3 * A};
      t[p + "attn.c_proj.weight"] = {A, C};
      t[p + "attn.c_proj.bias"] = {C};
      t[p + "mlp.c_fc.weight"] = {C, F};
      t[p + "mlp.c_fc.bias"] = {F};
      t[p + "mlp.c_proj.weight"] = {F, C};
      t[p + "mlp.c_proj.bias"] = {C};
    }
    t["transformer.ln_f.weight"] = t["transformer.ln_f.bias"] = {C};
    t["lm_head.weight"] = {V, C};
    return t;
  }
  TESSERA_REQUIRE(m.arch == "llama", "model.arch {} has no Hugging Face counterpart", m.arch);
  const int64_t Kw = int64_t{query_groups(m)} * D;
  t["model.embed_tokens.weight"] = {V, C};
  for (int i = 0; i < m.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t[p + "input_layernorm.weight"] = t[p + "post_attention_layernorm.weight"] = {C};
    t[p + "self_attn.q_proj.weight"] = {A, C};
    t[p + "self_attn.k_proj.weight"] = t[p + "self_attn.v_proj.weight"] = {Kw, C};
    t[p + "self_attn.o_proj.weight"] = {C, A};
    t[p + "mlp.gate_proj.weight"] = t[p + "mlp.up_proj.weight"] = {F, C};
    t[p + "mlp.down_proj.weight"] = {C, F};
  }
  t["model.norm.weight"] = {C};
  if (m.untie_embeddings_and_output_weights) t["lm_head.weight"] = {V, C};
  return t;
}

void check_hf_tensors(const json& config, const std::map<std::string, Tensor>& tensors, const std::string& where) {
  const HfModel h = model_from_hf_config(config, where + " (config)");
  const std::map<std::string, Shape> expected = expected_hf_tensors(h.model, h.vocab_size);
  for (const auto& [name, shape] : expected) {
    const auto it = tensors.find(name);
    TESSERA_REQUIRE(it != tensors.end(), "{}: missing tensor {}", where, name);
    TESSERA_REQUIRE(it->second.shape() == shape, "{}: tensor {} has shape {}, expected {}", where, name,
                    shape_string(it->second.shape()), shape_string(shape));
  }
  for (const auto& [name, tensor] : tensors) {
    TESSERA_REQUIRE(expected.count(name), "{}: unexpected tensor {} (not a parameter of this {} model)", where, name,
                    h.model.arch);
  }
}

Tensor transpose_2d(const Tensor& t) {
  TESSERA_CHECK(t.ndim() == 2, "transpose_2d: a {}-d tensor", t.ndim());
  const int64_t r = t.dim(0), c = t.dim(1);
  Tensor out = Tensor::empty({c, r});
  const float* in = t.f32();
  float* o = out.f32();
  for (int64_t i = 0; i < r; ++i) {
    for (int64_t j = 0; j < c; ++j) o[j * r + i] = in[i * c + j];
  }
  return out;
}

}  // namespace tessera
