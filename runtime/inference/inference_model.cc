// InferenceModel: weights checked against the config (and cut to this rank's shard), and the
// full causal forward.
#include "runtime/inference/inference_model.h"

#include <algorithm>

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

// This rank's share of t's leading dimension cut into `parts` equal blocks (c_attn's q | k | v
// are 3 blocks of heads; a bias is cut like its weight's rows). The whole t when tp.size == 1.
Tensor shard_rows(const Tensor& t, int64_t parts, const TpGroup& tp) {
  if (tp.size == 1) return t;
  const int64_t block = t.dim(0) / parts, share = block / tp.size;
  const int64_t row = t.numel() / t.dim(0);
  Shape shape = t.shape();
  shape[0] = parts * share;
  Tensor out = Tensor::empty(shape);
  for (int64_t p = 0; p < parts; ++p) {
    std::copy_n(t.f32() + (p * block + tp.rank * share) * row, share * row, out.f32() + p * share * row);
  }
  return out;
}

// This rank's share of the columns of a [rows, cols] t (c_proj: the inputs of its heads).
Tensor shard_columns(const Tensor& t, const TpGroup& tp) {
  if (tp.size == 1) return t;
  const int64_t rows = t.dim(0), cols = t.dim(1), share = cols / tp.size;
  Tensor out = Tensor::empty({rows, share});
  for (int64_t r = 0; r < rows; ++r) std::copy_n(t.f32() + r * cols + tp.rank * share, share, out.f32() + r * share);
  return out;
}

int64_t count_parameters(const std::map<std::string, Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& [name, t] : tensors) {
    // A tied head shares the embedding's storage: count it once.
    if (name == "lm_head.weight" && tensors.count("wte.weight") && t.f32() == tensors.at("wte.weight").f32()) continue;
    n += t.numel();
  }
  return n;
}

}  // namespace

InferenceModel::InferenceModel(const ModelConfig& config, Vocabulary vocabulary,
                               const std::map<std::string, Tensor>& tensors, const TpGroup& tp)
    : config_(config), vocabulary_(std::move(vocabulary)), tp_(tp) {
  TESSERA_REQUIRE(config_.arch == "gpt", "model.arch = {}: generation needs a gpt model", config_.arch);
  TESSERA_REQUIRE(config_.num_attention_heads > 0 && config_.hidden_size > 0 && config_.seq_length > 0,
                  "model: hidden_size, num_attention_heads and seq_length must be positive");
  head_dim_ = attention_head_dim(config_);
  const int64_t V = vocab_size(), C = config_.hidden_size, T = config_.seq_length;
  const int64_t A = config_.num_attention_heads * head_dim_;  // the whole model's, before sharding
  const int64_t F = config_.ffn_hidden_size > 0 ? config_.ffn_hidden_size : 4 * C;
  TESSERA_REQUIRE(tp.size >= 1 && config_.num_attention_heads % tp.size == 0 && F % tp.size == 0,
                  "--tp {}: the model's {} attention heads and MLP width {} must divide by it", tp.size,
                  config_.num_attention_heads, F);
  parameters_ = count_parameters(tensors);
  wte_ = take(tensors, "wte.weight", {V, C});
  wpe_ = take(tensors, "wpe.weight", {T, C});
  for (int i = 0; i < config_.num_layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    BlockWeights b;
    b.ln1_w = take(tensors, p + "ln_1.weight", {C});
    b.ln1_b = take(tensors, p + "ln_1.bias", {C});
    b.attn_w = shard_rows(take(tensors, p + "attn.c_attn.weight", {3 * A, C}), 3, tp);
    b.attn_b = shard_rows(take(tensors, p + "attn.c_attn.bias", {3 * A}), 3, tp);
    b.attn_proj_w = shard_columns(take(tensors, p + "attn.c_proj.weight", {C, A}), tp);
    b.attn_proj_b = take(tensors, p + "attn.c_proj.bias", {C});
    b.ln2_w = take(tensors, p + "ln_2.weight", {C});
    b.ln2_b = take(tensors, p + "ln_2.bias", {C});
    b.fc_w = shard_rows(take(tensors, p + "mlp.c_fc.weight", {F, C}), 1, tp);
    b.fc_b = shard_rows(take(tensors, p + "mlp.c_fc.bias", {F}), 1, tp);
    b.mlp_proj_w = shard_columns(take(tensors, p + "mlp.c_proj.weight", {C, F}), tp);
    b.mlp_proj_b = take(tensors, p + "mlp.c_proj.bias", {C});
    blocks_.push_back(std::move(b));
  }
  ln_f_w_ = take(tensors, "ln_f.weight", {C});
  ln_f_b_ = take(tensors, "ln_f.bias", {C});
  lm_head_ = take(tensors, "lm_head.weight", {V, C});
}

Tensor InferenceModel::forward(const Tensor& tokens) const {
  TESSERA_CHECK(tokens.dtype() == DType::I32 && tokens.ndim() == 2, "forward: tokens must be I32 [B, T]");
  TESSERA_CHECK(tp_.size == 1, "forward: the reference forward runs on an unsharded model");
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
    gpt_math::finish_block(w, x, att, tp_);
  }
  return gpt_math::logits(*this, x);
}

}  // namespace tessera
