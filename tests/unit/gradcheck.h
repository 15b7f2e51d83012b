// Helpers for the kernel tests: seeded random buffers, float-vs-double comparisons, and
// finite-difference gradient checks against double-precision reference implementations.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace tessera::testing {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// |actual - expected| <= rtol * |expected| + atol, elementwise.
struct Tolerance {
  double rtol;
  double atol;
};

// Checks actual (float, from a kernel) against expected (double, from a reference) and reports
// the worst element on failure.
inline void check_close(const std::string& what, const float* actual,
                        const std::vector<double>& expected, Tolerance tol) {
  size_t worst = 0;
  double worst_excess = -1.0;
  bool ok = true;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double err = std::abs(static_cast<double>(actual[i]) - expected[i]);
    const double allowed = tol.rtol * std::abs(expected[i]) + tol.atol;
    // Written so a NaN error fails.
    if (!(err <= allowed)) ok = false;
    const double excess = std::isnan(err) ? INFINITY : err - allowed;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  INFO(what << ": worst element " << worst << " of " << expected.size() << ": got "
            << (expected.empty() ? 0.0 : actual[worst]) << ", expected "
            << (expected.empty() ? 0.0 : expected[worst]));
  CHECK(ok);
}
inline void check_close(const std::string& what, const std::vector<float>& actual,
                        const std::vector<double>& expected, Tolerance tol) {
  REQUIRE(actual.size() == expected.size());
  check_close(what, actual.data(), expected, tol);
}

// Compares analytic[i] with the central difference (L(x + h e_i) - L(x - h e_i)) / 2h of a
// double-precision loss, for every i when x is small and an evenly spread subset of at most
// max_coords indices otherwise. `loss` reads x, which is perturbed in place and restored.
//
// In double, with h = 1e-5 and O(1) derivatives, the difference is accurate to ~1e-10
// (h^2 truncation plus 1e-16 |L| / h rounding), so the tolerance only has to absorb the float32
// rounding of the kernel under test.
template <class Loss>
void check_gradient(const std::string& what, std::vector<double>& x, Loss&& loss,
                    const std::vector<float>& analytic, Tolerance tol, size_t max_coords = 48,
                    double h = 1e-5) {
  REQUIRE(analytic.size() == x.size());
  const size_t n = x.size();
  const size_t stride = std::max<size_t>(1, (n + max_coords - 1) / max_coords);
  std::vector<size_t> idx;
  for (size_t i = 0; i < n; i += stride) idx.push_back(i);
  if (n > 0 && idx.back() != n - 1) idx.push_back(n - 1);
  std::vector<double> numeric;
  std::vector<float> picked;
  for (size_t i : idx) {
    const double saved = x[i];
    x[i] = saved + h;
    const double plus = loss();
    x[i] = saved - h;
    const double minus = loss();
    x[i] = saved;
    numeric.push_back((plus - minus) / (2 * h));
    picked.push_back(analytic[i]);
  }
  check_close(what + " (gradient vs finite differences)", picked, numeric, tol);
}

// sum_i a[i] * r[i]: the scalar loss whose gradient with respect to a is r.
inline double dot(const std::vector<double>& a, const std::vector<double>& r) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * r[i];
  return s;
}

}  // namespace tessera::testing
