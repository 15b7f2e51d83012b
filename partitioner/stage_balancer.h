// The stage balancer: splits the layer graph into p contiguous pipeline stages (or p * v
// chunks for the interleaved schedule) so that the slowest stage is as fast as possible and
// every rank fits its memory cap. Dynamic programming over prefix sums of the layer costs, so
// uneven layers (an embedding with no FLOPs, a head with a large vocabulary) are placed where
// they balance best rather than by an even count.
#pragma once

#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace tessera {

struct BalanceProblem {
  std::vector<double> layer_cost;  // per layer: forward + backward seconds of one microbatch
  int stages = 1;                  // p (pipeline ranks)
  int virtual_stages = 1;          // v: p * v chunks; global stage g = c * p + s runs on rank s
  double memory_cap = std::numeric_limits<double>::infinity();  // bytes per rank
  // Bytes rank `stage` needs when global stage `global` holds layers [first, last). With v == 1
  // this is the rank's whole memory; with v > 1 the caller gives each chunk a share and checks
  // the rank's total afterwards. Empty: no memory limit.
  std::function<double(int stage, int global, int first, int last)> memory;
};

struct BalanceResult {
  bool feasible = false;
  std::vector<int> counts;         // layers per global stage (p * v entries): parallel.partition
  std::vector<double> stage_cost;  // cost of each global stage
  double max_cost = 0;
  double max_memory = 0;           // the largest memory(...) of the chosen split
  // Infeasible: the smallest largest-memory any split reaches (what the cap would have to be),
  // or infinity when there are fewer layers than stages.
  double min_max_memory = 0;
  std::string reason;              // one line, when infeasible
};

// Minimises the largest stage cost subject to memory <= cap on every stage; among the splits
// with that cost, the one with the smallest largest memory. Every stage gets >= 1 layer.
BalanceResult balance_stages(const BalanceProblem& problem);

// The evenest count split (layers / stages, the remainder to the first stages): the baseline
// an unbalanced runtime would use, for comparisons.
std::vector<int> even_partition(int layers, int stages);

}  // namespace tessera
