// Llama inference on global weights: loading and the KV-cache decode, in the training block's
// order of operations (runtime/model/llama_block.cc) so that both give the same logits.
#include "runtime/inference/llama_inference.h"

#include <algorithm>

#include "kernels/cached_attention.h"
#include "kernels/matmul.h"
#include "kernels/residual.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint_tools.h"

namespace tessera {

namespace k = kernels::cpu;

namespace {

Tensor take(const std::map<std::string, Tensor>& tensors, const std::string& name, const Shape& shape) {
  const auto it = tensors.find(name);
  TESSERA_REQUIRE(it != tensors.end(), "llama model: missing tensor {}", name);
  TESSERA_REQUIRE(it->second.shape() == shape, "llama model: tensor {} has shape {}, expected {}", name,
                  shape_string(it->second.shape()), shape_string(shape));
  return it->second;
}

Tensor rmsnorm(const Tensor& x, const Tensor& w, float eps) {
  const int64_t rows = x.dim(0), cols = x.dim(1);
  Tensor out = Tensor::empty({rows, cols}), rstd = Tensor::empty({rows});
  k::rmsnorm_forward(out.f32(), rstd.f32(), x.f32(), w.f32(), rows, cols, eps);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w) {
  Tensor out = Tensor::empty({x.dim(0), w.dim(0)});
  k::linear_forward(out.f32(), x.f32(), w.f32(), nullptr, x.dim(0), x.dim(1), w.dim(0));
  return out;
}

}  // namespace

LlamaInferenceModel LlamaInferenceModel::load(const std::string& checkpoint_path) {
  CheckpointReader reader(resolve_checkpoint(checkpoint_path));
  const Manifest& m = reader.manifest();
  TESSERA_REQUIRE(m.model.has_value() && m.model->arch == "llama", "{}: not a llama checkpoint (model.arch {})",
                  reader.step_dir(), m.model ? m.model->arch : std::string("unknown"));
  return LlamaInferenceModel(*m.model, read_global_parameters(reader));
}

LlamaInferenceModel::LlamaInferenceModel(const ModelConfig& config, const std::map<std::string, Tensor>& t)
    : config_(config),
      heads_(config.num_attention_heads),
      groups_(query_groups(config)),
      head_dim_(attention_head_dim(config)) {
  const int64_t C = config.hidden_size, A = heads_ * head_dim_, Kw = groups_ * head_dim_, F = ffn_size(config);
  const auto wte = t.find("wte.weight");
  TESSERA_REQUIRE(wte != t.end() && wte->second.ndim() == 2, "llama model: missing tensor wte.weight");
  const int64_t V = wte->second.dim(0);
  wte_ = take(t, "wte.weight", {V, C});
  norm_f_ = take(t, "ln_f.weight", {C});
  lm_head_ = config.untie_embeddings_and_output_weights ? take(t, "lm_head.weight", {V, C}) : wte_;
  for (int i = 0; i < config.num_layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    blocks_.push_back({take(t, p + "input_layernorm.weight", {C}), take(t, p + "self_attn.q_proj.weight", {A, C}),
                       take(t, p + "self_attn.k_proj.weight", {Kw, C}), take(t, p + "self_attn.v_proj.weight", {Kw, C}),
                       take(t, p + "self_attn.o_proj.weight", {C, A}),
                       take(t, p + "post_attention_layernorm.weight", {C}), take(t, p + "mlp.gate_proj.weight", {F, C}),
                       take(t, p + "mlp.up_proj.weight", {F, C}), take(t, p + "mlp.down_proj.weight", {C, F})});
  }
  cos_ = Tensor::empty({config.seq_length, head_dim_ / 2});
  sin_ = Tensor::empty({config.seq_length, head_dim_ / 2});
  k::rope_tables(cos_.f32(), sin_.f32(), config.seq_length, head_dim_, config.rotary_base);
}

// Each new row's keys and values go into its sequence's cache; each query head attends to its
// group's cached keys and values (a one-head cached attention with the group's column offset).
void LlamaInferenceModel::attend(const std::vector<LlamaKvCache*>& caches, const std::vector<int64_t>& first,
                                 int layer, const Tensor& q, const Tensor& kk, const Tensor& v, Tensor& att) const {
  const int64_t A = heads_ * head_dim_, Kw = kv_width(), D = head_dim_, per_group = heads_ / groups_;
  for (size_t i = 0; i < caches.size(); ++i) {
    const int64_t past = caches[i]->length(), n = first[i + 1] - first[i];
    float* keys = caches[i]->keys(layer);
    float* values = caches[i]->values(layer);
    std::copy_n(kk.f32() + first[i] * Kw, n * Kw, keys + past * Kw);
    std::copy_n(v.f32() + first[i] * Kw, n * Kw, values + past * Kw);
    for (int64_t h = 0; h < heads_; ++h) {
      const int64_t g = h / per_group;
      k::cached_attention_forward(att.f32() + first[i] * A + h * D, A, q.f32() + first[i] * A + h * D, A,
                                  keys + g * D, values + g * D, Kw, n, past, 1, D);
    }
  }
}

Tensor LlamaInferenceModel::decode(const std::vector<LlamaKvCache*>& caches,
                                   const std::vector<std::vector<int32_t>>& new_tokens) const {
  TESSERA_CHECK(caches.size() == new_tokens.size() && !caches.empty(), "decode: {} caches for {} token lists",
                caches.size(), new_tokens.size());
  const int64_t S = static_cast<int64_t>(caches.size()), C = config_.hidden_size, D = head_dim_;
  const int64_t half = D / 2;
  std::vector<int64_t> first(S + 1, 0), positions;
  for (int64_t i = 0; i < S; ++i) {
    const int64_t n = static_cast<int64_t>(new_tokens[i].size());
    TESSERA_CHECK(n >= 1 && caches[i]->length() + n <= caches[i]->capacity(),
                  "decode: sequence {} holds {} tokens; {} more do not fit the context of {}", i, caches[i]->length(),
                  n, caches[i]->capacity());
    first[i + 1] = first[i] + n;
    for (int64_t r = 0; r < n; ++r) positions.push_back(caches[i]->length() + r);
  }
  const int64_t N = first[S];
  Tensor x = Tensor::empty({N, C});
  for (int64_t i = 0, r = 0; i < S; ++i) {
    for (const int32_t tok : new_tokens[i]) {
      TESSERA_CHECK(tok >= 0 && tok < vocab_size(), "decode: token {} outside the vocabulary of {}", tok, vocab_size());
      std::copy_n(wte_.f32() + tok * C, C, x.f32() + (r++) * C);
    }
  }
  for (int layer = 0; layer < num_layers(); ++layer) {
    const LlamaBlockWeights& w = blocks_[layer];
    const Tensor n1 = rmsnorm(x, w.norm1, config_.norm_epsilon);
    Tensor q = linear(n1, w.q), kk = linear(n1, w.k);
    const Tensor v = linear(n1, w.v);
    // Each row at its own position: a one-row table window starting at that position.
    for (int64_t r = 0; r < N; ++r) {
      const float* c = cos_.f32() + positions[r] * half;
      const float* s = sin_.f32() + positions[r] * half;
      k::rope_forward(q.f32() + r * q.dim(1), q.f32() + r * q.dim(1), c, s, 1, 1, heads_, D);
      k::rope_forward(kk.f32() + r * kk.dim(1), kk.f32() + r * kk.dim(1), c, s, 1, 1, groups_, D);
    }
    Tensor att = Tensor::empty({N, heads_ * D});
    attend(caches, first, layer, q, kk, v, att);
    const Tensor o = linear(att, w.o);
    k::residual_forward(x.f32(), x.f32(), o.f32(), N * C);
    const Tensor n2 = rmsnorm(x, w.norm2, config_.norm_epsilon);
    const Tensor gate = linear(n2, w.gate), up = linear(n2, w.up);
    Tensor act = Tensor::empty(gate.shape());
    k::swiglu_forward(act.f32(), gate.f32(), up.f32(), act.numel());
    const Tensor down = linear(act, w.down);
    k::residual_forward(x.f32(), x.f32(), down.f32(), N * C);
  }
  for (int64_t i = 0; i < S; ++i) caches[i]->advance(first[i + 1] - first[i]);
  Tensor last = Tensor::empty({S, C});
  for (int64_t i = 0; i < S; ++i) std::copy_n(x.f32() + (first[i + 1] - 1) * C, C, last.f32() + i * C);
  return linear(rmsnorm(last, norm_f_, config_.norm_epsilon), lm_head_);
}

LlamaKvCache::LlamaKvCache(const LlamaInferenceModel& model) : capacity_(model.context_length()) {
  for (int64_t l = 0; l < model.num_layers(); ++l) {
    keys_.push_back(Tensor::empty({capacity_, model.kv_width()}));
    values_.push_back(Tensor::empty({capacity_, model.kv_width()}));
  }
}

void LlamaKvCache::advance(int64_t n) {
  TESSERA_CHECK(length_ + n <= capacity_, "KV cache: {} + {} tokens exceed the capacity {}", length_, n, capacity_);
  length_ += n;
}

}  // namespace tessera
