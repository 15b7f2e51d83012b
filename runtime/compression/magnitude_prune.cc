// Magnitude masks: exact counts by selection, not by a threshold, so ties cannot change the
// sparsity.
#include "runtime/compression/magnitude_prune.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace tessera {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Prunes the k smallest |w| among the entries of `tensors` (pointers into their masks).
void prune_smallest(const std::vector<std::pair<const Tensor*, Tensor*>>& tensors, int64_t k) {
  std::vector<std::pair<float, int64_t>> entries;  // (|w|, flat index over all tensors)
  std::vector<std::pair<int64_t, float*>> offsets;  // (first flat index, mask data)
  int64_t total = 0;
  for (const auto& [w, mask] : tensors) {
    offsets.emplace_back(total, mask->f32());
    const float* p = w->f32();
    for (int64_t i = 0; i < w->numel(); ++i) entries.emplace_back(std::fabs(p[i]), total + i);
    total += w->numel();
  }
  if (k <= 0) return;
  std::nth_element(entries.begin(), entries.begin() + (k - 1), entries.end());
  for (int64_t j = 0; j < k; ++j) {
    const int64_t flat = entries[j].second;
    auto it = std::upper_bound(offsets.begin(), offsets.end(), flat,
                               [](int64_t f, const std::pair<int64_t, float*>& o) { return f < o.first; });
    --it;
    it->second[flat - it->first] = 0.f;
  }
}

void prune_nm(const std::string& name, const Tensor& w, Tensor& mask, int n, int m) {
  const int64_t last = w.shape().empty() ? 0 : w.shape().back();
  TESSERA_REQUIRE(last % m == 0, "--pattern {}:{}: tensor '{}' of shape {} has an input dimension of {}, not a multiple "
                  "of {}", n, m, name, shape_string(w.shape()), last, m);
  const float* p = w.f32();
  float* q = mask.f32();
  std::vector<int> order(m);
  for (int64_t g = 0; g < w.numel(); g += m) {
    std::iota(order.begin(), order.end(), 0);
    // The m - n smallest of the group go; a stable sort keeps the earlier one on a tie.
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return std::fabs(p[g + a]) < std::fabs(p[g + b]); });
    for (int j = 0; j < m - n; ++j) q[g + order[j]] = 0.f;
  }
}

}  // namespace

bool is_prunable_weight(const std::string& name, bool include_embeddings) {
  if (name == "wte.weight" || name == "wpe.weight" || name == "embedding.weight") return include_embeddings;
  if (name == "lm_head.weight" || name == "head.weight") return true;
  for (const char* suffix : {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight"}) {
    if (ends_with(name, suffix)) return true;
  }
  return name.rfind("fc.", 0) == 0 && ends_with(name, ".weight");
}

std::pair<int, int> parse_nm_pattern(const std::string& text) {
  int n = 0, m = 0;
  char colon = 0, rest = 0;
  const int got = std::sscanf(text.c_str(), "%d%c%d%c", &n, &colon, &m, &rest);
  TESSERA_REQUIRE(got == 3 && colon == ':' && n > 0 && n < m,
                  "--pattern {}: must be N:M with 0 < N < M (keep N of every M weights), e.g. 2:4", text);
  return {n, m};
}

std::map<std::string, Tensor> magnitude_masks(const std::map<std::string, Tensor>& weights,
                                              const MagnitudePruneOptions& o) {
  const bool pattern = o.pattern_m > 0;
  TESSERA_REQUIRE(pattern || (o.sparsity >= 0 && o.sparsity < 1),
                  "--sparsity {}: must be in [0, 1) (the fraction of weights pruned)", o.sparsity);
  std::map<std::string, Tensor> masks;
  for (const auto& [name, w] : weights) masks.emplace(name, Tensor::full(w.shape(), 1.f));
  if (pattern) {
    for (const auto& [name, w] : weights) prune_nm(name, w, masks.at(name), o.pattern_n, o.pattern_m);
    return masks;
  }
  const auto count = [&](int64_t n) { return static_cast<int64_t>(std::llround(o.sparsity * static_cast<double>(n))); };
  if (o.scope == MagnitudePruneOptions::Scope::Layer) {
    for (const auto& [name, w] : weights) prune_smallest({{&w, &masks.at(name)}}, count(w.numel()));
    return masks;
  }
  std::vector<std::pair<const Tensor*, Tensor*>> all;
  int64_t total = 0;
  for (const auto& [name, w] : weights) {
    all.emplace_back(&w, &masks.at(name));
    total += w.numel();
  }
  prune_smallest(all, count(total));
  return masks;
}

}  // namespace tessera
