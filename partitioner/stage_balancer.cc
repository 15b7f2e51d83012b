// Stage balancer: min-max dynamic programming over contiguous splits.
#include "partitioner/stage_balancer.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "core/error.h"

namespace tessera {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Min over contiguous splits of layers [0, L) into G non-empty parts of max_g weight(g, i, j),
// where weight is +inf for a forbidden part. Returns the split's part sizes (empty if none).
std::vector<int> minmax_split(int L, int G, const std::function<double(int, int, int)>& weight, double* best) {
  // f[g][j]: best value for the first j layers in g + 1 parts; from[g][j]: where part g starts.
  std::vector<std::vector<double>> f(G, std::vector<double>(L + 1, kInf));
  std::vector<std::vector<int>> from(G, std::vector<int>(L + 1, -1));
  for (int j = 1; j <= L - (G - 1); ++j) f[0][j] = weight(0, 0, j);
  for (int g = 1; g < G; ++g) {
    // Part g ends at j; at least g layers before it and G - 1 - g after it.
    for (int j = g + 1; j <= L - (G - 1 - g); ++j) {
      for (int i = g; i < j; ++i) {
        if (f[g - 1][i] == kInf) continue;
        const double v = std::max(f[g - 1][i], weight(g, i, j));
        if (v < f[g][j]) {
          f[g][j] = v;
          from[g][j] = i;
        }
      }
    }
  }
  *best = f[G - 1][L];
  if (*best == kInf) return {};
  std::vector<int> counts(G);
  int j = L;
  for (int g = G - 1; g >= 1; --g) {
    const int i = from[g][j];
    counts[g] = j - i;
    j = i;
  }
  counts[0] = j;
  return counts;
}

}  // namespace

BalanceResult balance_stages(const BalanceProblem& pb) {
  const int L = static_cast<int>(pb.layer_cost.size());
  const int p = pb.stages, G = pb.stages * pb.virtual_stages;
  TESSERA_CHECK(p >= 1 && pb.virtual_stages >= 1, "stages {} and virtual stages {} must be positive", p,
                pb.virtual_stages);
  BalanceResult r;
  if (L < G) {
    r.min_max_memory = kInf;
    r.reason = fmt::format("{} layers < {} pipeline stages", L, G);
    return r;
  }
  std::vector<double> prefix(L + 1, 0.0);
  for (int i = 0; i < L; ++i) prefix[i + 1] = prefix[i] + pb.layer_cost[i];
  auto cost = [&](int i, int j) { return prefix[j] - prefix[i]; };
  auto memory = [&](int g, int i, int j) { return pb.memory ? pb.memory(g % p, g, i, j) : 0.0; };
  const double cap = pb.memory_cap;

  // 1. The smallest slowest-stage cost among the splits that fit.
  double best_cost = kInf;
  auto timed = [&](int g, int i, int j) { return memory(g, i, j) <= cap ? cost(i, j) : kInf; };
  std::vector<int> counts = minmax_split(L, G, timed, &best_cost);
  if (counts.empty()) {
    // Say how much memory the leanest split needs, so the caller can name the shortfall.
    double leanest = kInf;
    minmax_split(L, G, memory, &leanest);
    r.min_max_memory = leanest;
    r.reason = fmt::format("no split of {} layers into {} stages fits the memory cap", L, G);
    return r;
  }
  // 2. Among splits within a hair of that cost, the one with the smallest largest memory.
  const double slack = best_cost * (1 + 1e-9) + 1e-15;
  double best_memory = kInf;
  auto lean = [&](int g, int i, int j) {
    const double m = memory(g, i, j);
    return cost(i, j) <= slack && m <= cap ? m : kInf;
  };
  std::vector<int> lean_counts = minmax_split(L, G, lean, &best_memory);
  if (!lean_counts.empty()) counts = lean_counts;

  r.feasible = true;
  r.counts = counts;
  int first = 0;
  for (int g = 0; g < G; ++g) {
    const int last = first + counts[g];
    r.stage_cost.push_back(cost(first, last));
    r.max_cost = std::max(r.max_cost, cost(first, last));
    r.max_memory = std::max(r.max_memory, memory(g, first, last));
    first = last;
  }
  return r;
}

std::vector<int> even_partition(int layers, int stages) {
  TESSERA_CHECK(stages >= 1 && layers >= stages, "cannot split {} layers into {} stages", layers, stages);
  std::vector<int> counts(stages, layers / stages);
  for (int i = 0; i < layers % stages; ++i) ++counts[i];
  return counts;
}

}  // namespace tessera
