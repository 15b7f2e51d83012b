// Tests of the CPU GELU kernel (tanh form) against a double-precision reference.
#include <catch2/catch.hpp>

#include <cmath>

#include "kernels/gelu.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

namespace {

std::vector<double> gelu_reference(const std::vector<double>& x) {
  const double k = std::sqrt(2.0 / M_PI);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    y[i] = 0.5 * x[i] * (1.0 + std::tanh(k * (x[i] + 0.044715 * x[i] * x[i] * x[i])));
  }
  return y;
}

}  // namespace

// Sizes: a single element, an odd count, one past the 1024-element backward block, and one
// large enough for the OpenMP path with an odd tail.
TEST_CASE("kernel gelu forward and backward match a double reference", "[kernels][gelu]") {
  for (size_t n : {size_t{1}, size_t{7}, size_t{1025}, size_t{100003}}) {
    CAPTURE(n);
    const std::vector<float> x = random_floats(n, 1, -5.0f, 5.0f);
    const std::vector<float> r = random_floats(n, 2);
    std::vector<float> y(n), dx(n, NAN);
    gelu_forward(y.data(), x.data(), n);
    gelu_backward(dx.data(), x.data(), r.data(), n);

    std::vector<double> xd = to_double(x);
    const std::vector<double> rd = to_double(r);
    // Eigen's float tanh is within a few ulp; for x << 0 the output is a small difference
    // (1 + tanh u ~ 0) whose absolute error is ~|x| * 2^-24 ~ 3e-7.
    check_close("gelu forward", y, gelu_reference(xd), {1e-5, 1e-6});
    // L = sum(gelu(x) * r): dL/dx = r * gelu'(x). Near |x| = 5, tanh u is within a few ulp of
    // +-1, and 1 - tanh^2 u (formed as PyTorch forms it) carries ~2^-23 absolute error, which
    // x k (1 + 3c x^2) / 2 ~ 9 amplifies to ~2e-6. Elsewhere the error is ~1e-7 relative.
    // The large case samples fewer coordinates: each sample re-runs the 100k-element reference.
    check_gradient("gelu dx", xd, [&] { return dot(gelu_reference(xd), rd); }, dx, {1e-4, 5e-6},
                   n > 10000 ? 12 : 48);
  }
}

TEST_CASE("kernel gelu forward may run in place", "[kernels][gelu]") {
  std::vector<float> x = random_floats(33, 3, -3.0f, 3.0f);
  std::vector<float> expected(x.size());
  gelu_forward(expected.data(), x.data(), static_cast<int64_t>(x.size()));
  gelu_forward(x.data(), x.data(), static_cast<int64_t>(x.size()));
  CHECK(x == expected);
}
