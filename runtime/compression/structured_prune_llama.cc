// Structured pruning of a Llama block with grouped-query attention. Query head h reads
// key/value group h / (H / G) (transformers' repeat_kv), so the groups stay uniform: either
// whole groups go (their k/v rows and all their query heads), or every kept group keeps the
// same number of its own query heads. Kept heads are listed in ascending order, which keeps
// each group's heads together and in group order: new head h' then reads new group
// h' / (H' / G'), as the smaller model computes it. A SwiGLU channel is a row of gate_proj and
// up_proj and a column of down_proj, removed together.
#include "runtime/compression/structured_prune_llama.h"

#include <cmath>

#include "partitioner/layer_graph.h"
#include "runtime/compression/structured_tensors.h"

namespace tessera::structured {
namespace {

struct Names {
  std::string q, k, v, o, gate, up, down;
};

Names names(int layer) {
  const std::string b = block(layer);
  return {b + ".self_attn.q_proj.weight", b + ".self_attn.k_proj.weight", b + ".self_attn.v_proj.weight",
          b + ".self_attn.o_proj.weight", b + ".mlp.gate_proj.weight",    b + ".mlp.up_proj.weight",
          b + ".mlp.down_proj.weight"};
}

int64_t heads_per_group(const ModelConfig& m) { return m.num_attention_heads / query_groups(m); }

}  // namespace

std::vector<BlockScores> llama_weight_scores(const std::map<std::string, Tensor>& w, const ModelConfig& m) {
  const int64_t H = m.num_attention_heads, G = query_groups(m), D = attention_head_dim(m), F = ffn_size(m);
  const int64_t r = H / G;
  std::vector<BlockScores> out(m.num_layers);
  for (int l = 0; l < m.num_layers; ++l) {
    const Names n = names(l);
    const Tensor &q = get(w, n.q), &k = get(w, n.k), &v = get(w, n.v), &o = get(w, n.o);
    const Tensor &gate = get(w, n.gate), &up = get(w, n.up), &down = get(w, n.down);
    std::vector<double> head_sq;
    for (int64_t h = 0; h < H; ++h) {
      double s = 0;
      for (int64_t i : head_span({h}, D)) s += row_sq(q, i) + col_sq(o, i);
      head_sq.push_back(s);
      out[l].heads.push_back(std::sqrt(s));
    }
    for (int64_t g = 0; g < G; ++g) {
      double s = 0;
      for (int64_t i : head_span({g}, D)) s += row_sq(k, i) + row_sq(v, i);
      for (int64_t h = g * r; h < (g + 1) * r; ++h) s += head_sq[h];
      out[l].groups.push_back(std::sqrt(s));
    }
    for (int64_t j = 0; j < F; ++j) {
      out[l].neurons.push_back(std::sqrt(row_sq(gate, j) + row_sq(up, j) + col_sq(down, j)));
    }
  }
  return out;
}

void add_llama_group_scores(std::vector<BlockScores>& scores, const ModelConfig& m) {
  const int64_t G = query_groups(m), r = heads_per_group(m);
  for (BlockScores& s : scores) {
    s.groups.assign(G, 0.0);
    for (int64_t h = 0; h < G * r; ++h) s.groups[h / r] += s.heads[h];
  }
}

void plan_llama_attention(const std::vector<BlockScores>& scores, const ModelConfig& m,
                          const StructuredPruneOptions& o, StructuredPlan& plan) {
  const int64_t G = query_groups(m), r = heads_per_group(m);
  const int64_t drop_groups = std::llround(o.groups * static_cast<double>(G));
  const int64_t drop_heads = std::llround(o.heads * static_cast<double>(r));
  TESSERA_REQUIRE(drop_groups <= G - 1,
                  "--structured groups={}: would remove {} of the {} key/value groups of each block (at most {})",
                  o.groups, drop_groups, G, G - 1);
  TESSERA_REQUIRE(drop_heads <= r - 1,
                  "--structured heads={}: would remove {} of the {} query heads of each key/value group (at most {}); "
                  "groups=FRACTION removes whole groups",
                  o.heads, drop_heads, r, r - 1);
  plan.groups = G - drop_groups;
  const int64_t kept_per_group = r - drop_heads;
  plan.heads = plan.groups * kept_per_group;
  TESSERA_REQUIRE(plan.groups % o.tp == 0,
                  "--structured groups={}: leaves {} key/value groups per block, not divisible by "
                  "parallel.tensor_model_parallel_size = {}",
                  o.groups, plan.groups, o.tp);
  for (const BlockScores& s : scores) {
    plan.keep_groups.push_back(top(s.groups, plan.groups));
    std::vector<int64_t> heads;
    for (int64_t g : plan.keep_groups.back()) {
      const std::vector<double> own(s.heads.begin() + g * r, s.heads.begin() + (g + 1) * r);
      for (int64_t j : top(own, kept_per_group)) heads.push_back(g * r + j);
    }
    plan.keep_heads.push_back(std::move(heads));  // ascending: groups ascending, heads within
  }
}

void shrink_llama(std::map<std::string, Tensor>& out, const std::map<std::string, Tensor>& w, const ModelConfig& m,
                  const StructuredPlan& plan) {
  const int64_t D = attention_head_dim(m);
  for (int l = 0; l < m.num_layers; ++l) {
    const Names n = names(l);
    const std::vector<int64_t> heads = head_span(plan.keep_heads[l], D), groups = head_span(plan.keep_groups[l], D);
    const std::vector<int64_t>& neurons = plan.keep_neurons[l];
    out[n.q] = take_rows(get(w, n.q), heads);
    out[n.k] = take_rows(get(w, n.k), groups);
    out[n.v] = take_rows(get(w, n.v), groups);
    out[n.o] = take_cols(get(w, n.o), heads);
    out[n.gate] = take_rows(get(w, n.gate), neurons);
    out[n.up] = take_rows(get(w, n.up), neurons);
    out[n.down] = take_cols(get(w, n.down), neurons);
  }
}

// A removed query head writes nothing once its o_proj columns are zero (its q rows are zeroed
// too, for a clean mask); a removed group's k/v rows then feed only removed heads. A removed
// channel's gate row gives silu(0) = 0 and its down column is zero.
void zero_llama(std::map<std::string, Tensor>& w, const ModelConfig& m, const StructuredPlan& plan) {
  const int64_t D = attention_head_dim(m), F = ffn_size(m);
  for (int l = 0; l < m.num_layers; ++l) {
    const Names n = names(l);
    const std::vector<int64_t> heads = head_span(complement(plan.keep_heads[l], m.num_attention_heads), D);
    const std::vector<int64_t> groups = head_span(complement(plan.keep_groups[l], query_groups(m)), D);
    const std::vector<int64_t> neurons = complement(plan.keep_neurons[l], F);
    zero_rows(w.at(n.q), heads);
    zero_cols(w.at(n.o), heads);
    zero_rows(w.at(n.k), groups);
    zero_rows(w.at(n.v), groups);
    zero_rows(w.at(n.gate), neurons);
    zero_rows(w.at(n.up), neurons);
    zero_cols(w.at(n.down), neurons);
  }
}

}  // namespace tessera::structured
