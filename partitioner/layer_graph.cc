// Layer graph construction with FLOP, parameter and activation-memory counts per layer.
#include "partitioner/layer_graph.h"

#include "core/error.h"
#include "partitioner/llama_layers.h"

namespace tessera {
namespace {

constexpr int64_t kF32 = 4;

LayerSpec gpt_block(const ModelConfig& m, int index, int64_t B) {
  const int64_t C = m.hidden_size, F = ffn_size(m), T = m.seq_length;
  const int64_t H = m.num_attention_heads, N = B * T;
  const int64_t A = H * attention_head_dim(m);  // attention width; < C once heads are pruned
  LayerSpec s;
  s.name = "h." + std::to_string(index);
  s.kind = LayerKind::TransformerBlock;
  const int64_t matmul_params = 3 * A * C + C * A + C * F + F * C;
  s.params = matmul_params + 3 * A + C + F + C + 4 * C;
  // 2 FLOPs per multiply-add; attention scores and the weighted sum are 2 * N * T * A each.
  s.forward_flops = 2.0 * N * matmul_params + 4.0 * N * T * A;
  s.backward_flops = 2.0 * s.forward_flops;
  // Saved: block input, ln1 out + stats, qkv, probs, attention out, residual, ln2 out + stats,
  // fc out, gelu out.
  s.activation_bytes = kF32 * (N * C * 4 + 4 * N * A + B * H * T * T + 2 * N * F + 4 * N);
  return s;
}

}  // namespace

int64_t ffn_size(const ModelConfig& m) {
  return m.ffn_hidden_size > 0 ? m.ffn_hidden_size : 4 * static_cast<int64_t>(m.hidden_size);
}

int layer_of_parameter(const LayerGraph& g, const std::string& name) {
  const auto starts = [&](const std::string& prefix) { return name.rfind(prefix, 0) == 0; };
  for (size_t i = 0; i < g.layers.size(); ++i) {
    if (starts(g.layers[i].name + ".")) return static_cast<int>(i);
  }
  // Embedding and head parameters keep nanoGPT's names rather than their layer's.
  if (starts("wte.") || starts("wpe.")) return 0;
  if (starts("ln_f.") || starts("lm_head.")) return static_cast<int>(g.layers.size()) - 1;
  return -1;
}

std::string layer_kind_name(LayerKind kind) {
  switch (kind) {
    case LayerKind::Embedding: return "embedding";
    case LayerKind::TransformerBlock: return "transformer_block";
    case LayerKind::Head: return "head";
    case LayerKind::Linear: return "linear";
    case LayerKind::Custom: return "custom";
  }
  return "?";
}

int64_t LayerGraph::total_params() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.params;
  return n;
}

double LayerGraph::flops_per_token() const {
  double f = 0;
  for (const auto& l : layers) f += l.forward_flops + l.backward_flops;
  return tokens_per_microbatch > 0 ? f / static_cast<double>(tokens_per_microbatch) : 0.0;
}

LayerGraph build_layer_graph(const ModelConfig& m, int64_t vocab_size, int64_t B) {
  TESSERA_CHECK(vocab_size > 0 && B > 0, "vocab {} and micro batch {} must be positive", vocab_size, B);
  LayerGraph g;
  g.vocab_size = vocab_size;
  const int64_t T = m.seq_length, C = m.hidden_size, N = B * T;
  g.tokens_per_microbatch = N;
  if (m.arch == "gpt") {
    LayerSpec emb{"embedding", LayerKind::Embedding};
    emb.params = vocab_size * C + T * C;
    emb.activation_bytes = 0;
    g.layers.push_back(emb);
    for (int i = 0; i < m.num_layers; ++i) g.layers.push_back(gpt_block(m, i, B));
    LayerSpec head{"head", LayerKind::Head};
    head.params = 2 * C + C * vocab_size;
    head.forward_flops = 2.0 * N * C * vocab_size;
    head.backward_flops = 2.0 * head.forward_flops;
    head.activation_bytes = kF32 * (2 * N * C + N * vocab_size + 4 * N);
    g.layers.push_back(head);
  } else if (m.arch == "llama") {
    g.layers.push_back(llama_embedding_spec(m, vocab_size, B));
    for (int i = 0; i < m.num_layers; ++i) g.layers.push_back(llama_block_spec(m, i, B));
    g.layers.push_back(llama_head_spec(m, vocab_size, B));
  } else if (m.arch == "mlp") {
    // An embedding of the input tokens, then num_layers Linear layers; the last one
    // projects to the output classes and is followed by the loss in the head.
    LayerSpec emb{"embedding", LayerKind::Embedding};
    const int64_t in = m.input_size > 0 ? m.input_size : C;
    emb.params = vocab_size * in;
    g.layers.push_back(emb);
    int64_t width = in;
    for (int i = 0; i < m.num_layers; ++i) {
      LayerSpec l{"fc." + std::to_string(i), LayerKind::Linear};
      l.in_features = width;
      l.out_features = C;
      if (i % 2 == 1) {
        l.tp_rule = LayerSpec::TpRule::Row;
      } else if (i + 1 < m.num_layers) {
        l.tp_rule = LayerSpec::TpRule::Column;
      }
      l.params = width * C + C;
      l.forward_flops = 2.0 * N * width * C;
      l.backward_flops = 2.0 * l.forward_flops;
      l.activation_bytes = kF32 * (N * width + 2 * N * C);
      width = C;
      g.layers.push_back(l);
    }
    const int64_t out = m.output_size > 0 ? m.output_size : vocab_size;
    LayerSpec head{"head", LayerKind::Head};
    head.in_features = width;
    head.out_features = out;
    head.params = width * out + out;
    head.forward_flops = 2.0 * N * width * out;
    head.backward_flops = 2.0 * head.forward_flops;
    head.activation_bytes = kF32 * (N * width + N * out + 4 * N);
    g.layers.push_back(head);
  } else {
    TESSERA_CHECK(false, "unknown arch '{}'", m.arch);
  }
  return g;
}

LayerSpec custom_layer(const LayerGraph& g, const std::string& name, const std::string& type, int64_t in_features,
                       int64_t out_features, const CustomLayerCost& cost) {
  TESSERA_REQUIRE(!name.empty() && !type.empty(), "custom layer '{}' of type '{}': needs a name and a type", name,
                  type);
  TESSERA_REQUIRE(in_features > 0 && out_features >= 0 && cost.params >= 0,
                  "custom layer '{}': in_features {}, out_features {} and params {} must not be negative (in_features > 0)",
                  name, in_features, out_features, cost.params);
  LayerSpec s{name, LayerKind::Custom};
  s.custom_type = type;
  s.in_features = in_features;
  s.out_features = out_features > 0 ? out_features : in_features;
  s.params = cost.params;
  CustomLayerCost& c = s.custom_cost;
  c.params = cost.params;
  c.forward_flops_per_token = cost.forward_flops_per_token >= 0 ? cost.forward_flops_per_token : 4.0 * s.out_features;
  c.backward_flops_per_token =
      cost.backward_flops_per_token >= 0 ? cost.backward_flops_per_token : 2.0 * c.forward_flops_per_token;
  c.activation_bytes_per_token =
      cost.activation_bytes_per_token >= 0 ? cost.activation_bytes_per_token : double{kF32} * in_features;
  const double N = static_cast<double>(g.tokens_per_microbatch);
  s.forward_flops = N * c.forward_flops_per_token;
  s.backward_flops = N * c.backward_flops_per_token;
  s.activation_bytes = static_cast<int64_t>(N * c.activation_bytes_per_token);
  return s;
}

void insert_layer_after(LayerGraph& g, const std::string& after, LayerSpec layer) {
  int at = -1;
  for (size_t i = 0; i < g.layers.size(); ++i) {
    TESSERA_REQUIRE(g.layers[i].name != layer.name, "layer graph: a layer named '{}' already exists", layer.name);
    if (g.layers[i].name == after) at = static_cast<int>(i);
  }
  TESSERA_REQUIRE(at >= 0, "layer graph: no layer named '{}' to insert '{}' after", after, layer.name);
  TESSERA_REQUIRE(g.layers[at].kind != LayerKind::Head,
                  "layer graph: '{}' cannot follow the head, which computes the loss", layer.name);
  // Several layers placed after the same one keep the order they were inserted in.
  while (at + 1 < static_cast<int>(g.layers.size()) && g.layers[at + 1].kind == LayerKind::Custom) ++at;
  g.layers.insert(g.layers.begin() + at + 1, std::move(layer));
}

LayerGraph build_layer_graph(const ModelConfig& m, int64_t vocab_size, int64_t B,
                             const std::vector<CustomLayerPlacement>& custom_layers) {
  LayerGraph g = build_layer_graph(m, vocab_size, B);
  for (const CustomLayerPlacement& c : custom_layers) {
    insert_layer_after(g, c.after, custom_layer(g, c.name, c.type, c.in_features, c.out_features, c.cost));
  }
  return g;
}

}  // namespace tessera
