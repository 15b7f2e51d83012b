// Tests of the CPU bias broadcast and its gradient.
#include <catch2/catch.hpp>

#include "kernels/bias.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

// The last shape is large enough for the OpenMP path and has an odd column count.
TEST_CASE("kernel bias forward adds to rows and backward accumulates column sums",
          "[kernels][bias]") {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {3, 5}, {300, 129}};
  for (auto [rows, cols] : shapes) {
    CAPTURE(rows, cols);
    const std::vector<float> x0 = random_floats(rows * cols, 6);
    const std::vector<float> bias = random_floats(cols, 7);
    const std::vector<float> r = random_floats(rows * cols, 8);
    std::vector<float> x = x0;
    bias_forward(x.data(), bias.data(), rows, cols);
    // dbias is a parameter gradient: it accumulates onto what is already there.
    const std::vector<float> prior = random_floats(cols, 9);
    std::vector<float> dbias = prior;
    bias_backward(dbias.data(), r.data(), rows, cols);
    for (int64_t c = 0; c < cols; ++c) dbias[c] -= prior[c];

    std::vector<double> bd = to_double(bias);
    const std::vector<double> xd = to_double(x0), rd = to_double(r);
    auto reference = [&] {
      std::vector<double> out(xd);
      for (int64_t i = 0; i < rows * cols; ++i) out[i] += bd[i % cols];
      return out;
    };
    // One float addition per element: within half an ulp of values below 2.
    check_close("bias forward", x, reference(), {1e-7, 1e-7});
    // Float column sums of up to 300 terms in [-1, 1] (partial sums ~ 17): each addition rounds
    // by <= 1e-6, so a random walk of 300 of them stays well below 1e-4.
    check_gradient("bias dbias", bd, [&] { return dot(reference(), rd); }, dbias, {1e-5, 1e-4});
  }
}
