// Builds runtime layers from the layer graph.
#include "runtime/model/model.h"

#include <cmath>

#include "runtime/model/embedding_layer.h"
#include "runtime/model/head_layer.h"
#include "runtime/model/linear_layer.h"
#include "runtime/model/llama_model.h"
#include "runtime/model/transformer_block.h"

namespace tessera {
namespace {

float fan_in_std(int64_t fan_in) { return 1.f / std::sqrt(static_cast<float>(fan_in)); }

TpSplit tp_split(LayerSpec::TpRule rule) {
  switch (rule) {
    case LayerSpec::TpRule::Column: return TpSplit::Column;
    case LayerSpec::TpRule::Row: return TpSplit::Row;
    case LayerSpec::TpRule::Replicated: break;
  }
  return TpSplit::Replicated;
}

std::unique_ptr<Layer> build_layer(const ModelConfig& m, const LayerGraph& g, const LayerSpec& spec,
                                   TpGroup tp, uint64_t seed, bool selective_recompute,
                                   const LayerRegistry* custom_layers) {
  const bool gpt = m.arch == "gpt";
  const float std = m.init_std;
  if (m.arch == "llama" && spec.kind != LayerKind::Custom) {
    return build_llama_layer(m, g, spec, tp, seed, selective_recompute);
  }
  switch (spec.kind) {
    case LayerKind::Embedding:
      if (gpt) {
        return std::make_unique<EmbeddingLayer>(spec.name, "wte.weight", g.vocab_size, m.hidden_size,
                                                m.seq_length, std, seed, tp);
      }
      return std::make_unique<EmbeddingLayer>(spec.name, "embedding.weight", g.vocab_size,
                                              m.input_size > 0 ? m.input_size : m.hidden_size, 0,
                                              1.f, seed, tp);
    case LayerKind::TransformerBlock:
      return std::make_unique<TransformerBlock>(
          spec.name, BlockShape{m.hidden_size, m.num_attention_heads, ffn_size(m), attention_head_dim(m)},
          m.num_layers, std, seed, tp, selective_recompute);
    case LayerKind::Linear:
      // 1/sqrt(fan_in), as PyTorch's nn.Linear scale: with GPT's 0.02 a deep MLP's signal vanishes.
      return std::make_unique<LinearLayer>(spec.name, spec.in_features, spec.out_features,
                                           m.activation == "relu" ? Activation::Relu : Activation::Gelu,
                                           tp_split(spec.tp_rule), fan_in_std(spec.in_features), seed, tp);
    case LayerKind::Head: {
      HeadOptions options;
      if (gpt) {
        options.norm_name = "ln_f";
        return std::make_unique<HeadLayer>(spec.name, options, g.vocab_size, m.hidden_size, std,
                                           seed, tp);
      }
      options.weight_name = "head.weight";
      options.bias_name = "head.bias";
      return std::make_unique<HeadLayer>(spec.name, options, spec.out_features, spec.in_features,
                                         fan_in_std(spec.in_features), seed, tp);
    }
    case LayerKind::Custom:
      TESSERA_REQUIRE(custom_layers != nullptr,
                      "layer '{}' is a custom layer of type '{}', but no LayerRegistry was given to build it",
                      spec.name, spec.custom_type);
      return custom_layers->build(CustomLayerArgs{spec, m, tp, seed});
  }
  TESSERA_CHECK(false, "unknown layer kind for {}", spec.name);
}

}  // namespace

Model::Model(const ModelConfig& config, const LayerGraph& graph, TpGroup tp, uint64_t seed, int first,
             int last, bool selective_recompute, const LayerRegistry* custom_layers,
             const std::function<void(Layer&)>& on_built)
    : graph_(graph) {
  if (last < 0) last = static_cast<int>(graph.layers.size());
  TESSERA_CHECK(first >= 0 && first < last && last <= static_cast<int>(graph.layers.size()),
                "bad layer range [{}, {}) of {}", first, last, graph.layers.size());
  for (int i = first; i < last; ++i) {
    layers_.push_back(build_layer(config, graph, graph.layers[i], tp, seed, selective_recompute, custom_layers));
    // The head, the last layer, is tied as soon as it exists: on_built must see it tied.
    if (i == last - 1 && config.arch == "llama" && !config.untie_embeddings_and_output_weights) {
      tie_llama_embeddings(layers_);
    }
    if (on_built) on_built(*layers_.back());
  }
}

std::vector<Parameter*> Model::parameters() {
  std::vector<Parameter*> ps;
  for (auto& l : layers_) {
    for (Parameter* p : l->parameters()) ps.push_back(p);
  }
  return ps;
}

Parameter* Model::find(const std::string& name) {
  for (Parameter* p : parameters()) {
    if (p->name == name) return p;
  }
  return nullptr;
}

void Model::zero_grad() {
  // ZeRO-2/3 parameters have a gradient only while their layer's backward runs.
  for (Parameter* p : parameters()) {
    if (!p->grad.defined()) continue;
    p->grad.zero();
    p->grad_zero = !p->tied;
  }
}

Tensor Model::forward(const Tensor& x, const MicrobatchContext& ctx) {
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int index = hooks_first_ + static_cast<int>(i);
    if (hooks_) hooks_->before_forward(index);
    h = layers_[i]->forward(h, ctx);
    if (hooks_) hooks_->after_forward(index);
  }
  return h;
}

Tensor Model::backward(const Tensor& dy, const MicrobatchContext& ctx,
                       const std::function<void(int)>& after_layer) {
  Tensor d = dy;
  for (int i = static_cast<int>(layers_.size()) - 1; i >= 0; --i) {
    if (hooks_) hooks_->before_backward(hooks_first_ + i);
    d = layers_[i]->backward(d, ctx);
    if (after_layer) after_layer(i);
    if (hooks_) hooks_->after_backward(hooks_first_ + i);
  }
  return d;
}

}  // namespace tessera
