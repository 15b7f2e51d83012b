// Structured pruning: scores, the plan, and cutting the tensors down.
#include "runtime/compression/structured_prune.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <sstream>

#include "runtime/compute/compute.h"
#include "partitioner/layer_graph.h"
#include "runtime/model/model.h"
#include "runtime/model/transformer_block.h"

namespace tessera {
namespace {

std::string block(int l) { return "h." + std::to_string(l); }

const Tensor& get(const std::map<std::string, Tensor>& w, const std::string& name) {
  const auto it = w.find(name);
  TESSERA_REQUIRE(it != w.end(), "structured pruning: the checkpoint has no tensor '{}'", name);
  return it->second;
}

double row_sq(const Tensor& t, int64_t row) {
  const int64_t k = t.dim(1);
  const float* p = t.f32() + row * k;
  double s = 0;
  for (int64_t i = 0; i < k; ++i) s += static_cast<double>(p[i]) * p[i];
  return s;
}

double col_sq(const Tensor& t, int64_t col) {
  double s = 0;
  for (int64_t r = 0; r < t.dim(0); ++r) {
    const double v = t.f32()[r * t.dim(1) + col];
    s += v * v;
  }
  return s;
}

// The c_attn rows (q, k and v blocks) and c_proj columns of each kept head.
std::vector<int64_t> head_rows(const std::vector<int64_t>& heads, int64_t D, int64_t A) {
  std::vector<int64_t> rows;
  for (int b = 0; b < 3; ++b) {
    for (int64_t h : heads) {
      for (int64_t d = 0; d < D; ++d) rows.push_back(b * A + h * D + d);
    }
  }
  return rows;
}

std::vector<int64_t> head_cols(const std::vector<int64_t>& heads, int64_t D) {
  std::vector<int64_t> cols;
  for (int64_t h : heads) {
    for (int64_t d = 0; d < D; ++d) cols.push_back(h * D + d);
  }
  return cols;
}

// Rows of a [R, K] matrix (or entries of a [R] vector).
Tensor take_rows(const Tensor& t, const std::vector<int64_t>& rows) {
  Shape shape = t.shape();
  const int64_t k = t.numel() / shape[0];
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor out = Tensor::empty(shape);
  for (size_t i = 0; i < rows.size(); ++i) std::memcpy(out.f32() + i * k, t.f32() + rows[i] * k, sizeof(float) * k);
  return out;
}

Tensor take_cols(const Tensor& t, const std::vector<int64_t>& cols) {
  const int64_t R = t.dim(0), K = t.dim(1), n = static_cast<int64_t>(cols.size());
  Tensor out = Tensor::empty({R, n});
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t j = 0; j < n; ++j) out.f32()[r * n + j] = t.f32()[r * K + cols[j]];
  }
  return out;
}

std::vector<int64_t> complement(const std::vector<int64_t>& keep, int64_t n) {
  std::vector<bool> kept(n, false);
  for (int64_t i : keep) kept[i] = true;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    if (!kept[i]) out.push_back(i);
  }
  return out;
}

// Indices of the `keep` highest scores, ascending; ties keep the lower index.
std::vector<int64_t> top(const std::vector<double>& scores, int64_t keep) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  order.resize(keep);
  std::sort(order.begin(), order.end());
  return order;
}

double parse_fraction(const std::string& text, const std::string& key, const std::string& all) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  TESSERA_REQUIRE(!text.empty() && *end == '\0' && v >= 0 && v < 1,
                  "--structured {}: {}={} must be a fraction in [0, 1) (of each block's {} removed)", all, key, text,
                  key);
  return v;
}

}  // namespace

void parse_structured(const std::string& text, StructuredPruneOptions& o) {
  std::stringstream parts(text);
  std::string part;
  bool any = false;
  while (std::getline(parts, part, ',')) {
    const auto eq = part.find('=');
    const std::string key = part.substr(0, eq);
    TESSERA_REQUIRE(eq != std::string::npos && (key == "neurons" || key == "heads"),
                    "--structured {}: must be a list of neurons=FRACTION and heads=FRACTION, e.g. neurons=0.5,heads=0.25",
                    text);
    (key == "neurons" ? o.neurons : o.heads) = parse_fraction(part.substr(eq + 1), key, text);
    any = true;
  }
  TESSERA_REQUIRE(any, "--structured {}: must be a list of neurons=FRACTION and heads=FRACTION, e.g. neurons=0.5",
                  text);
}

std::vector<BlockScores> weight_scores(const std::map<std::string, Tensor>& w, const ModelConfig& m) {
  const int64_t H = m.num_attention_heads, D = attention_head_dim(m), A = H * D, F = ffn_size(m);
  std::vector<BlockScores> out(m.num_layers);
  for (int l = 0; l < m.num_layers; ++l) {
    const Tensor& qkv = get(w, block(l) + ".attn.c_attn.weight");
    const Tensor& proj = get(w, block(l) + ".attn.c_proj.weight");
    const Tensor& fc = get(w, block(l) + ".mlp.c_fc.weight");
    const Tensor& fc_proj = get(w, block(l) + ".mlp.c_proj.weight");
    for (int64_t h = 0; h < H; ++h) {
      double s = 0;
      for (int64_t r : head_rows({h}, D, A)) s += row_sq(qkv, r);
      for (int64_t c : head_cols({h}, D)) s += col_sq(proj, c);
      out[l].heads.push_back(std::sqrt(s));
    }
    for (int64_t j = 0; j < F; ++j) out[l].neurons.push_back(std::sqrt(row_sq(fc, j) + col_sq(fc_proj, j)));
  }
  return out;
}

std::vector<BlockScores> activation_scores(const std::map<std::string, Tensor>& w, const ModelConfig& m,
                                           int64_t vocab_size, const Batch& batch) {
  const int64_t B = batch.tokens.dim(0), N = B * batch.tokens.dim(1);
  const LayerGraph graph = build_layer_graph(m, vocab_size, B);
  Model model(m, graph, TpGroup::single(), 0);
  for (Parameter* p : model.parameters()) {
    const Tensor& t = get(w, p->name);
    TESSERA_REQUIRE(t.shape() == p->value.shape(), "structured pruning: tensor '{}' has shape {}, the model's is {}",
                    p->name, shape_string(t.shape()), shape_string(p->value.shape()));
    p->value.copy_from(t);
  }
  const std::unique_ptr<Compute> compute = make_cpu_compute(Precision::FP32);
  MicrobatchContext ctx;
  ctx.compute = compute.get();
  ctx.tokens = batch.tokens;
  ctx.targets = batch.targets;
  ctx.training = true;  // the blocks keep their activations, which we take instead of a backward
  const int64_t D = attention_head_dim(m);
  std::vector<BlockScores> out;
  Tensor h;
  for (auto& layer : model.layers()) {
    auto* blk = dynamic_cast<TransformerBlock*>(layer.get());
    if (layer.get() != model.layers().front().get() && blk == nullptr) break;  // the head: not needed
    h = layer->forward(h, ctx);
    if (blk == nullptr) continue;
    const BlockActivations a = blk->take_activations(ctx.microbatch);
    BlockScores s;
    const auto mean_abs_cols = [&](const Tensor& t, int64_t first, int64_t count) {
      double sum = 0;
      for (int64_t r = 0; r < N; ++r) {
        for (int64_t c = first; c < first + count; ++c) sum += std::fabs(t.f32()[r * t.dim(1) + c]);
      }
      return sum / static_cast<double>(N * count);
    };
    for (int64_t hd = 0; hd < m.num_attention_heads; ++hd) s.heads.push_back(mean_abs_cols(a.attention, hd * D, D));
    for (int64_t j = 0; j < a.mlp.dim(1); ++j) s.neurons.push_back(mean_abs_cols(a.mlp, j, 1));
    out.push_back(std::move(s));
  }
  return out;
}

StructuredPlan plan_structured(const std::vector<BlockScores>& scores, const ModelConfig& m,
                               const StructuredPruneOptions& o) {
  const int64_t H = m.num_attention_heads, F = ffn_size(m);
  const int64_t drop_heads = std::llround(o.heads * static_cast<double>(H));
  const int64_t drop_neurons = std::llround(o.neurons * static_cast<double>(F));
  TESSERA_REQUIRE(drop_heads <= H - 1, "--structured heads={}: would remove {} of the {} heads of each block (at most {})",
                  o.heads, drop_heads, H, H - 1);
  TESSERA_REQUIRE(drop_neurons <= F - 1,
                  "--structured neurons={}: would remove {} of the {} neurons of each block (at most {})", o.neurons,
                  drop_neurons, F, F - 1);
  StructuredPlan plan;
  plan.heads = H - drop_heads;
  plan.ffn = F - drop_neurons;
  plan.head_dim = attention_head_dim(m);
  TESSERA_REQUIRE(plan.heads % o.tp == 0,
                  "--structured heads={}: leaves {} heads per block, not divisible by parallel.tensor_model_parallel_size "
                  "= {}",
                  o.heads, plan.heads, o.tp);
  TESSERA_REQUIRE(plan.ffn % o.tp == 0,
                  "--structured neurons={}: leaves {} neurons per block, not divisible by "
                  "parallel.tensor_model_parallel_size = {}",
                  o.neurons, plan.ffn, o.tp);
  for (const BlockScores& s : scores) {
    plan.keep_heads.push_back(top(s.heads, plan.heads));
    plan.keep_neurons.push_back(top(s.neurons, plan.ffn));
  }
  return plan;
}

ModelConfig pruned_model_config(const ModelConfig& m, const StructuredPlan& plan) {
  ModelConfig out = m;
  out.ffn_hidden_size = static_cast<int>(plan.ffn);
  out.num_attention_heads = static_cast<int>(plan.heads);
  out.head_dim = static_cast<int>(plan.head_dim);
  return out;
}

std::map<std::string, Tensor> shrink_weights(const std::map<std::string, Tensor>& w, const ModelConfig& m,
                                             const StructuredPlan& plan) {
  const int64_t D = attention_head_dim(m), A = m.num_attention_heads * D;
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : w) out.emplace(name, t.clone());
  for (int l = 0; l < m.num_layers; ++l) {
    const std::string b = block(l);
    const std::vector<int64_t> rows = head_rows(plan.keep_heads[l], D, A), cols = head_cols(plan.keep_heads[l], D);
    const std::vector<int64_t>& neurons = plan.keep_neurons[l];
    out[b + ".attn.c_attn.weight"] = take_rows(get(w, b + ".attn.c_attn.weight"), rows);
    out[b + ".attn.c_attn.bias"] = take_rows(get(w, b + ".attn.c_attn.bias"), rows);
    out[b + ".attn.c_proj.weight"] = take_cols(get(w, b + ".attn.c_proj.weight"), cols);
    out[b + ".mlp.c_fc.weight"] = take_rows(get(w, b + ".mlp.c_fc.weight"), neurons);
    out[b + ".mlp.c_fc.bias"] = take_rows(get(w, b + ".mlp.c_fc.bias"), neurons);
    out[b + ".mlp.c_proj.weight"] = take_cols(get(w, b + ".mlp.c_proj.weight"), neurons);
  }
  return out;
}

void zero_removed(std::map<std::string, Tensor>& w, const ModelConfig& m, const StructuredPlan& plan) {
  const int64_t H = m.num_attention_heads, D = attention_head_dim(m), A = H * D, F = ffn_size(m);
  for (int l = 0; l < m.num_layers; ++l) {
    const std::string b = block(l);
    const std::vector<int64_t> heads = complement(plan.keep_heads[l], H), neurons = complement(plan.keep_neurons[l], F);
    const auto zero_rows = [&](const std::string& name, const std::vector<int64_t>& rows) {
      Tensor& t = w.at(name);
      const int64_t k = t.numel() / t.dim(0);
      for (int64_t r : rows) std::fill(t.f32() + r * k, t.f32() + (r + 1) * k, 0.f);
    };
    const auto zero_cols = [&](const std::string& name, const std::vector<int64_t>& cols) {
      Tensor& t = w.at(name);
      for (int64_t r = 0; r < t.dim(0); ++r) {
        for (int64_t c : cols) t.f32()[r * t.dim(1) + c] = 0.f;
      }
    };
    zero_rows(b + ".attn.c_attn.weight", head_rows(heads, D, A));
    zero_rows(b + ".attn.c_attn.bias", head_rows(heads, D, A));
    zero_cols(b + ".attn.c_proj.weight", head_cols(heads, D));
    zero_rows(b + ".mlp.c_fc.weight", neurons);
    zero_rows(b + ".mlp.c_fc.bias", neurons);
    zero_cols(b + ".mlp.c_proj.weight", neurons);
  }
}

}  // namespace tessera
