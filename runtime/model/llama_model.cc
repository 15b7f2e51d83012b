// Llama layers from the layer graph, and the tying of the head to the embedding.
#include "runtime/model/llama_model.h"

#include "runtime/model/embedding_layer.h"
#include "runtime/model/head_layer.h"
#include "runtime/model/llama_block.h"

namespace tessera {
namespace {

LlamaShape llama_shape(const ModelConfig& m) {
  LlamaShape s;
  s.hidden = m.hidden_size;
  s.heads = m.num_attention_heads;
  s.groups = query_groups(m);
  s.head_dim = attention_head_dim(m);
  s.ffn = ffn_size(m);
  s.rotary_base = m.rotary_base;
  s.norm_eps = m.norm_epsilon;
  return s;
}

}  // namespace

std::unique_ptr<Layer> build_llama_layer(const ModelConfig& m, const LayerGraph& g, const LayerSpec& spec,
                                         TpGroup tp, uint64_t seed, bool selective_recompute) {
  switch (spec.kind) {
    case LayerKind::Embedding: {
      auto embedding = std::make_unique<EmbeddingLayer>(spec.name, "wte.weight", g.vocab_size, m.hidden_size, 0,
                                                        m.init_std, seed, tp);
      embedding->token_table()->tied = !m.untie_embeddings_and_output_weights;
      return embedding;
    }
    case LayerKind::TransformerBlock:
      return std::make_unique<LlamaBlock>(spec.name, llama_shape(m), m.init_std, seed, tp, selective_recompute);
    case LayerKind::Head: {
      HeadOptions options;
      options.norm_name = "ln_f";
      options.rms_norm = true;
      options.norm_eps = m.norm_epsilon;
      // Tied: the head's table starts as the embedding's (same name, same initial values), so a
      // head on another pipeline stage than the embedding holds an exact copy of it.
      if (!m.untie_embeddings_and_output_weights) options.weight_name = "wte.weight";
      return std::make_unique<HeadLayer>(spec.name, options, g.vocab_size, m.hidden_size, m.init_std, seed, tp);
    }
    default: break;
  }
  TESSERA_CHECK(false, "layer {}: a llama graph has no layer of kind {}", spec.name, layer_kind_name(spec.kind));
}

void tie_llama_embeddings(std::vector<std::unique_ptr<Layer>>& layers) {
  EmbeddingLayer* embedding = nullptr;
  HeadLayer* head = nullptr;
  for (auto& l : layers) {
    if (auto* e = dynamic_cast<EmbeddingLayer*>(l.get())) embedding = e;
    if (auto* h = dynamic_cast<HeadLayer*>(l.get())) head = h;
  }
  if (embedding != nullptr && head != nullptr) {
    head->tie_weight(embedding->token_table());
  } else if (head != nullptr) {
    head->mark_tied_replica();  // the embedding is on the first pipeline stage
  }
}

}  // namespace tessera
