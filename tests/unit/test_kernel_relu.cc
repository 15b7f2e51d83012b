// Tests of the CPU ReLU kernel.
#include <catch2/catch.hpp>

#include <cmath>

#include "kernels/relu.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

TEST_CASE("kernel relu forward and backward match a double reference", "[kernels][relu]") {
  for (size_t n : {size_t{1}, size_t{9}, size_t{70001}}) {
    CAPTURE(n);
    std::vector<float> x = random_floats(n, 4);
    // Keep inputs away from the kink so the central difference (h = 1e-5) never straddles it.
    for (float& v : x) v += v >= 0.0f ? 0.01f : -0.01f;
    const std::vector<float> r = random_floats(n, 5);
    std::vector<float> y(n), dx(n, NAN);
    relu_forward(y.data(), x.data(), n);
    relu_backward(dx.data(), x.data(), r.data(), n);

    std::vector<double> xd = to_double(x);
    const std::vector<double> rd = to_double(r);
    auto reference = [&] {
      std::vector<double> out(n);
      for (size_t i = 0; i < n; ++i) out[i] = std::max(xd[i], 0.0);
      return out;
    };
    // max and select are exact in float.
    check_close("relu forward", y, reference(), {0.0, 0.0});
    check_gradient("relu dx", xd, [&] { return dot(reference(), rd); }, dx, {1e-6, 1e-7});
  }
}
