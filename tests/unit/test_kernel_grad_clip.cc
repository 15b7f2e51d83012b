// Tests of the CPU gradient-clipping pieces: sum of squares and the clip coefficient.
// Neither has a gradient of its own, so there is no finite-difference check here.
#include <catch2/catch.hpp>

#include <cmath>

#include "kernels/grad_clip.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

// Sizes: empty, one, odd, and 2^20 + 3 which takes the OpenMP path.
TEST_CASE("kernel sum_squares accumulates in double and is reproducible", "[kernels][grad_clip]") {
  for (size_t n : {size_t{0}, size_t{1}, size_t{17}, (size_t{1} << 20) + 3}) {
    CAPTURE(n);
    const std::vector<float> x = random_floats(n, 80, -3.0f, 3.0f);
    double expected = 0.0;
    for (float v : x) expected += static_cast<double>(v) * v;
    const double got = sum_squares(x.data(), n);
    // Double accumulation of a million float squares: relative error ~1e-13.
    CHECK(got == Approx(expected).epsilon(1e-12).margin(1e-300));
    CHECK(sum_squares(x.data(), n) == got);
  }
}

TEST_CASE("kernel clip_coefficient follows torch.nn.utils.clip_grad_norm_",
          "[kernels][grad_clip]") {
  CHECK(clip_coefficient(0.5, 1.0f) == 1.0f);
  CHECK(clip_coefficient(0.0, 1.0f) == 1.0f);
  CHECK(clip_coefficient(4.0, 1.0f) == 1.0f / (4.0f + 1e-6f));
  CHECK(clip_coefficient(1.0, 1.0f) == 1.0f / (1.0f + 1e-6f));
  CHECK(clip_coefficient(100.0, 0.0f) == 1.0f);
  CHECK(clip_coefficient(100.0, -1.0f) == 1.0f);
  CHECK(clip_coefficient(INFINITY, 1.0f) == 0.0f);
  CHECK(std::isnan(clip_coefficient(NAN, 1.0f)));
}
