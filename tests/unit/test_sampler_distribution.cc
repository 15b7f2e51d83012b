// The token sampler that `tessera generate` and `tessera serve` use (runtime/inference/sampler.h)
// draws from softmax(logits / T) restricted to the top_k largest logits: a chi-square
// goodness-of-fit test per (T, top_k), against probabilities computed here from that definition
// (long double, sorted by hand), on enough fixed-seed draws that a wrong temperature, a wrong
// cut or a biased uniform fails by a wide margin.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "runtime/inference/sampler.h"

using namespace tessera;

namespace {

// Twelve logits with a tie (ids 4 and 9 at 0.9) so that top_k = 6 cuts between equals.
const std::vector<float> kLogits = {1.3f, -0.2f, 2.1f, 0.4f, 0.9f, -1.0f, 2.6f, 3.0f, -2.5f, 0.9f, 1.7f, 0.0f};

// The definition: order by logit (larger first), ties by id (lower first); keep the first k
// (all when k = 0); p_i = exp(l_i / T) / sum over the kept of exp(l_j / T); 0 for the rest.
std::vector<long double> expected_probabilities(float temperature, int top_k) {
  std::vector<int> order(kLogits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [](int a, int b) { return kLogits[a] > kLogits[b]; });
  const size_t kept = top_k > 0 ? static_cast<size_t>(top_k) : order.size();
  std::vector<long double> p(kLogits.size(), 0.0L);
  long double total = 0;
  for (size_t i = 0; i < kept; ++i) total += p[order[i]] = std::exp(static_cast<long double>(kLogits[order[i]]) / temperature);
  for (long double& x : p) x /= total;
  return p;
}

// The chi-square quantiles of upper tail 1e-6 for the degrees of freedom used below (the
// regularised incomplete gamma function, solved by bisection): a correct sampler exceeds them
// once in a million seeds.
double chi_square_bound(int degrees_of_freedom) {
  switch (degrees_of_freedom) {
    case 2: return 27.63;
    case 5: return 35.89;
    case 11: return 48.87;
    default: FAIL("no bound tabulated for " << degrees_of_freedom << " degrees of freedom"); return 0;
  }
}

std::vector<int64_t> draw_counts(float temperature, int top_k, uint64_t seed, int64_t draws) {
  std::vector<int64_t> counts(kLogits.size(), 0);
  Sampler sampler(seed);
  const SamplingOptions options{temperature, top_k};
  for (int64_t i = 0; i < draws; ++i) ++counts.at(sampler.next(kLogits.data(), kLogits.size(), options));
  return counts;
}

struct Fit {
  double chi_square = 0;
  int degrees_of_freedom = 0;
  int64_t outside = 0;  // draws of a token whose expected probability is 0
};

Fit fit(const std::vector<int64_t>& counts, const std::vector<long double>& p) {
  const int64_t draws = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  Fit f;
  for (size_t t = 0; t < p.size(); ++t) {
    if (p[t] == 0) {
      f.outside += counts[t];
      continue;
    }
    const double e = static_cast<double>(p[t] * draws);
    f.chi_square += (counts[t] - e) * (counts[t] - e) / e;
    ++f.degrees_of_freedom;
  }
  --f.degrees_of_freedom;  // the counts sum to `draws`
  return f;
}

}  // namespace

TEST_CASE("sampler: draws follow softmax(logits / T) over the top_k (chi-square)", "[generate][sampler]") {
  // 200k draws: the smallest expected count below (T 0.3, top_k 3: exp((2.1 - 3.0) / 0.3) of
  // the mass, normalised 3.8 %) is ~7600, so the chi-square approximation holds. Measured when
  // this was written: chi-square 2.7, 4.8 and 0.7 for the three cases; the same draws judged
  // against a temperature 5 % off give about 270, 7 times the bound (the next test case).
  const int64_t draws = 200000;
  struct Case {
    float temperature;
    int top_k;
  };
  for (const Case c : {Case{0.8f, 6}, Case{1.5f, 0}, Case{0.3f, 3}}) {
    const Fit f = fit(draw_counts(c.temperature, c.top_k, 20240520 + c.top_k, draws),
                      expected_probabilities(c.temperature, c.top_k));
    INFO("T " << c.temperature << ", top_k " << c.top_k << ": chi-square " << f.chi_square << " with "
              << f.degrees_of_freedom << " degrees of freedom");
    CHECK(f.outside == 0);
    CHECK(f.degrees_of_freedom == (c.top_k > 0 ? c.top_k : static_cast<int>(kLogits.size())) - 1);
    CHECK(f.chi_square < chi_square_bound(f.degrees_of_freedom));
  }
}

TEST_CASE("sampler: the chi-square test rejects a sampler at the wrong temperature", "[generate][sampler]") {
  // The check above has power: the same kind of draws judged against T 0.84 instead of 0.8.
  const Fit f = fit(draw_counts(0.8f, 6, 20240526, 200000), expected_probabilities(0.84f, 6));
  INFO("chi-square against T 0.84: " << f.chi_square);
  CHECK(f.chi_square > 5 * chi_square_bound(5));
}
