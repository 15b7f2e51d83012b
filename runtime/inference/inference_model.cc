// InferenceModel: weights checked against the config, and the full causal forward.
#include "runtime/inference/inference_model.h"

#include "kernels/attention.h"
#include "runtime/inference/gpt_math.h"

namespace tessera {

namespace {

Tensor take(const std::map<std::string, Tensor>& tensors, const std::string& name, const Shape& shape) {
  const auto it = tensors.find(name);
  TESSERA_REQUIRE(it != tensors.end(), "model weights: tensor '{}' is missing", name);
  TESSERA_REQUIRE(it->second.dtype() == DType::F32, "model weights: tensor '{}' is {}, expected F32", name,
                  dtype_name(it->second.dtype()));
  TESSERA_REQUIRE(it->second.shape() == shape, "model weights: tensor '{}' has shape {}, the config needs {}",
                  name, shape_string(it->second.shape()), shape_string(shape));
  return it->second;
}

}  // namespace

InferenceModel::InferenceModel(const ModelConfig& config, Vocabulary vocabulary,
                               const std::map<std::string, Tensor>& tensors)
    : config_(config), vocabulary_(std::move(vocabulary)) {
  TESSERA_REQUIRE(config_.arch == "gpt", "model.arch = {}: generation needs a gpt model", config_.arch);
  TESSERA_REQUIRE(config_.num_attention_heads > 0 && config_.hidden_size > 0 && config_.seq_length > 0,
                  "model: hidden_size, num_attention_heads and seq_length must be positive");
  head_dim_ = attention_head_dim(config_);
  const int64_t V = vocab_size(), C = config_.hidden_size, A = attention_width(), T = config_.seq_length;
  const int64_t F = config_.ffn_hidden_size > 0 ? config_.ffn_hidden_size : 4 * C;
  wte_ = take(tensors, "wte.weight", {V, C});
  wpe_ = take(tensors, "wpe.weight", {T, C});
  for (int i = 0; i < config_.num_layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    BlockWeights b;
    b.ln1_w = take(tensors, p + "ln_1.weight", {C});
    b.ln1_b = take(tensors, p + "ln_1.bias", {C});
    b.attn_w = take(tensors, p + "attn.c_attn.weight", {3 * A, C});
    b.attn_b = take(tensors, p + "attn.c_attn.bias", {3 * A});
    b.attn_proj_w = take(tensors, p + "attn.c_proj.weight", {C, A});
    b.attn_proj_b = take(tensors, p + "attn.c_proj.bias", {C});
    b.ln2_w = take(tensors, p + "ln_2.weight", {C});
    b.ln2_b = take(tensors, p + "ln_2.bias", {C});
    b.fc_w = take(tensors, p + "mlp.c_fc.weight", {F, C});
    b.fc_b = take(tensors, p + "mlp.c_fc.bias", {F});
    b.mlp_proj_w = take(tensors, p + "mlp.c_proj.weight", {C, F});
    b.mlp_proj_b = take(tensors, p + "mlp.c_proj.bias", {C});
    blocks_.push_back(std::move(b));
  }
  ln_f_w_ = take(tensors, "ln_f.weight", {C});
  ln_f_b_ = take(tensors, "ln_f.bias", {C});
  lm_head_ = take(tensors, "lm_head.weight", {V, C});
}

Tensor InferenceModel::forward(const Tensor& tokens) const {
  TESSERA_CHECK(tokens.dtype() == DType::I32 && tokens.ndim() == 2, "forward: tokens must be I32 [B, T]");
  const int64_t B = tokens.dim(0), T = tokens.dim(1), N = B * T, A = attention_width();
  TESSERA_CHECK(T >= 1 && T <= context_length(), "forward: {} tokens per sequence, the context holds {}", T,
                context_length());
  for (int64_t r = 0; r < N; ++r) {
    const int32_t t = tokens.i32()[r];
    TESSERA_CHECK(t >= 0 && t < vocab_size(), "forward: token {} outside the vocabulary of {}", t, vocab_size());
  }
  std::vector<int64_t> positions(N);
  for (int64_t r = 0; r < N; ++r) positions[r] = r % T;
  Tensor x = gpt_math::embed(*this, tokens.i32(), positions.data(), N);
  Tensor probs = Tensor::empty({B, num_heads(), T, T});
  for (const BlockWeights& w : blocks_) {
    const Tensor qkv = gpt_math::attention_inputs(w, x);
    Tensor att = Tensor::empty({N, A});
    kernels::cpu::attention_forward(att.f32(), probs.f32(), qkv.f32(), B, T, num_heads(), head_dim_);
    gpt_math::finish_block(w, x, att);
  }
  return gpt_math::logits(*this, x);
}

}  // namespace tessera
