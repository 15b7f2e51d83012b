// The stage balancer against brute force, uneven layers, memory caps and infeasible splits.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>

#include "partitioner/stage_balancer.h"

using namespace tessera;

namespace {

struct Brute {
  double best_cost = INFINITY;    // smallest max cost over splits that fit
  double best_memory = INFINITY;  // smallest max memory over all splits
};

// Every composition of L layers into G non-empty parts.
void enumerate(int L, int G, std::vector<int>& parts, const std::function<void(const std::vector<int>&)>& f) {
  const int used = std::accumulate(parts.begin(), parts.end(), 0);
  if (static_cast<int>(parts.size()) == G - 1) {
    parts.push_back(L - used);
    f(parts);
    parts.pop_back();
    return;
  }
  const int left = G - 1 - static_cast<int>(parts.size());
  for (int n = 1; used + n + left <= L; ++n) {
    parts.push_back(n);
    enumerate(L, G, parts, f);
    parts.pop_back();
  }
}

Brute brute_force(const BalanceProblem& pb) {
  const int L = static_cast<int>(pb.layer_cost.size()), p = pb.stages, G = p * pb.virtual_stages;
  Brute b;
  std::vector<int> parts;
  enumerate(L, G, parts, [&](const std::vector<int>& counts) {
    double cost = 0, memory = 0;
    int first = 0;
    for (int g = 0; g < G; ++g) {
      const int last = first + counts[g];
      double c = 0;
      for (int i = first; i < last; ++i) c += pb.layer_cost[i];
      cost = std::max(cost, c);
      memory = std::max(memory, pb.memory(g % p, g, first, last));
      first = last;
    }
    b.best_memory = std::min(b.best_memory, memory);
    if (memory <= pb.memory_cap) b.best_cost = std::min(b.best_cost, cost);
  });
  return b;
}

}  // namespace

TEST_CASE("balancer matches brute force on random instances", "[partitioner][balancer]") {
  std::mt19937 rng(12345);
  std::uniform_real_distribution<double> u(0.1, 5.0);
  int infeasible = 0, constrained = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int L = 2 + static_cast<int>(rng() % 9);  // 2..10 layers
    const int p = 1 + static_cast<int>(rng() % std::min(4, L));
    const int v = (rng() % 3 == 0 && L >= 2 * p) ? 2 : 1;
    BalanceProblem pb;
    pb.stages = p;
    pb.virtual_stages = v;
    std::vector<double> layer_memory;
    for (int i = 0; i < L; ++i) {
      pb.layer_cost.push_back(u(rng));
      layer_memory.push_back(u(rng));
    }
    // Memory grows with the layers held and, as with 1F1B, more on earlier stages.
    pb.memory = [&, p](int stage, int, int first, int last) {
      double m = 0;
      for (int i = first; i < last; ++i) m += layer_memory[i];
      return m * (1.0 + 0.5 * (p - stage));
    };
    double total = 0;
    for (double m : layer_memory) total += m;
    pb.memory_cap = u(rng) / 5.0 * total * 1.5;
    const BalanceResult r = balance_stages(pb);
    const Brute b = brute_force(pb);
    INFO("trial " << trial << ": L " << L << " p " << p << " v " << v);
    if (std::isinf(b.best_cost)) {
      ++infeasible;
      REQUIRE_FALSE(r.feasible);
      REQUIRE(r.min_max_memory == Approx(b.best_memory));
      continue;
    }
    REQUIRE(r.feasible);
    REQUIRE(r.max_cost == Approx(b.best_cost));
    REQUIRE(static_cast<int>(r.counts.size()) == p * v);
    REQUIRE(std::accumulate(r.counts.begin(), r.counts.end(), 0) == L);
    REQUIRE(*std::min_element(r.counts.begin(), r.counts.end()) >= 1);
    REQUIRE(r.max_memory <= pb.memory_cap);
    // The reported stage costs add up and their max is the objective.
    double sum = 0;
    for (double c : r.stage_cost) sum += c;
    REQUIRE(sum == Approx(std::accumulate(pb.layer_cost.begin(), pb.layer_cost.end(), 0.0)));
    if (r.max_memory > 0.8 * pb.memory_cap) ++constrained;
  }
  // The random caps exercise both outcomes.
  CHECK(infeasible > 10);
  CHECK(constrained > 10);
}

TEST_CASE("balancer places a cheap embedding and an expensive head unevenly", "[partitioner][balancer]") {
  // embedding (no FLOPs), four blocks, a head with a large vocabulary.
  BalanceProblem pb;
  pb.layer_cost = {0.0, 1.0, 1.0, 1.0, 1.0, 2.5};
  pb.stages = 2;
  const BalanceResult r = balance_stages(pb);
  REQUIRE(r.feasible);
  CHECK(r.counts == std::vector<int>{4, 2});
  CHECK(r.max_cost == Approx(3.5));
  // The even split would put 4.5 on the last stage.
  CHECK(even_partition(6, 2) == std::vector<int>{3, 3});
}

TEST_CASE("balancer prefers the leaner split among equally fast ones", "[partitioner][balancer]") {
  BalanceProblem pb;
  pb.layer_cost = {1.0, 1.0, 0.0, 1.0};
  pb.stages = 2;
  // [2, 2] and [3, 1] both cost 2; stage 0 holding 3 layers needs more memory.
  pb.memory = [](int, int, int first, int last) { return static_cast<double>(last - first); };
  const BalanceResult r = balance_stages(pb);
  REQUIRE(r.feasible);
  CHECK(r.counts == std::vector<int>{2, 2});
  CHECK(r.max_memory == 2.0);
}

TEST_CASE("balancer reports infeasible splits", "[partitioner][balancer]") {
  BalanceProblem pb;
  pb.layer_cost = {1.0, 1.0, 1.0};
  pb.stages = 4;
  BalanceResult r = balance_stages(pb);
  CHECK_FALSE(r.feasible);
  CHECK(r.reason == "3 layers < 4 pipeline stages");
  CHECK(std::isinf(r.min_max_memory));

  pb.stages = 3;
  pb.memory = [](int, int, int first, int last) { return 10.0 * (last - first); };
  pb.memory_cap = 9.0;
  r = balance_stages(pb);
  CHECK_FALSE(r.feasible);
  CHECK(r.min_max_memory == 10.0);  // one layer per stage still needs 10
  CHECK(r.reason == "no split of 3 layers into 3 stages fits the memory cap");
}
