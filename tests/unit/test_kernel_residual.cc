// Tests of the CPU elementwise helpers: residual add, accumulate, scale.
#include <catch2/catch.hpp>

#include "kernels/residual.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

// Each output is one float operation on the inputs, so the kernels must match the same
// operation done here exactly; 100003 takes the OpenMP path with a ragged tail.
TEST_CASE("kernel residual add, accumulate and scale are exact elementwise",
          "[kernels][residual]") {
  for (size_t n : {size_t{1}, size_t{13}, size_t{100003}}) {
    CAPTURE(n);
    const std::vector<float> a = random_floats(n, 10), b = random_floats(n, 11);
    std::vector<float> sum(n), expected(n);
    for (size_t i = 0; i < n; ++i) expected[i] = a[i] + b[i];
    residual_forward(sum.data(), a.data(), b.data(), n);
    CHECK(sum == expected);

    std::vector<float> aliased = a;
    residual_forward(aliased.data(), aliased.data(), b.data(), n);
    CHECK(aliased == expected);

    std::vector<float> acc = a;
    accumulate(acc.data(), b.data(), n);
    CHECK(acc == expected);

    std::vector<float> scaled = a;
    scale(scaled.data(), 0.37f, n);
    for (size_t i = 0; i < n; ++i) expected[i] = a[i] * 0.37f;
    CHECK(scaled == expected);
  }
}

// The residual's backward is the upstream gradient accumulated into both branches; check that
// composition against finite differences of y = a + b.
TEST_CASE("kernel residual backward via accumulate matches finite differences",
          "[kernels][residual]") {
  const size_t n = 21;
  const std::vector<float> a = random_floats(n, 12), b = random_floats(n, 13),
                           r = random_floats(n, 14);
  std::vector<float> da(n, 0.0f), db(n, 0.0f);
  accumulate(da.data(), r.data(), n);
  accumulate(db.data(), r.data(), n);
  std::vector<double> ad = to_double(a), bd = to_double(b);
  const std::vector<double> rd = to_double(r);
  auto loss = [&] {
    std::vector<double> y(n);
    for (size_t i = 0; i < n; ++i) y[i] = ad[i] + bd[i];
    return dot(y, rd);
  };
  // Linear loss: the difference is exact up to double rounding (~1e-11).
  check_gradient("residual da", ad, loss, da, {1e-9, 1e-9});
  check_gradient("residual db", bd, loss, db, {1e-9, 1e-9});
}
