// Tests of the CPU LayerNorm kernels against a double-precision reference.
#include <catch2/catch.hpp>

#include <cmath>

#include "kernels/layernorm.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

namespace {

constexpr double kEps = 1e-5;

// PyTorch's LayerNorm: biased variance, eps inside the square root.
std::vector<double> layernorm_reference(const std::vector<double>& x, const std::vector<double>& w,
                                        const std::vector<double>& b, int64_t rows, int64_t cols,
                                        std::vector<double>* mean = nullptr,
                                        std::vector<double>* rstd = nullptr) {
  std::vector<double> y(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    double m = 0.0, var = 0.0;
    for (int64_t c = 0; c < cols; ++c) m += x[r * cols + c];
    m /= cols;
    for (int64_t c = 0; c < cols; ++c) var += (x[r * cols + c] - m) * (x[r * cols + c] - m);
    const double s = 1.0 / std::sqrt(var / cols + kEps);
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = (x[r * cols + c] - m) * s * w[c] + b[c];
    if (mean) mean->push_back(m);
    if (rstd) rstd->push_back(s);
  }
  return y;
}

}  // namespace

// Shapes: one column (variance 0, output = bias), odd sizes, GPT width, and 300 x 33 which
// takes the OpenMP path. Inputs get a row offset of 3 so the mean matters.
TEST_CASE("kernel layernorm forward and backward match a double reference",
          "[kernels][layernorm]") {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{2, 1}, {3, 7}, {5, 128}, {300, 33}};
  for (auto [rows, cols] : shapes) {
    CAPTURE(rows, cols);
    std::vector<float> x = random_floats(rows * cols, 30);
    for (float& v : x) v += 3.0f;
    const std::vector<float> w = random_floats(cols, 31, 0.5f, 1.5f), b = random_floats(cols, 32),
                             r = random_floats(rows * cols, 33);
    std::vector<float> y(rows * cols), mean(rows), rstd(rows);
    layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows, cols);
    const std::vector<float> prior_w = random_floats(cols, 34), prior_b = random_floats(cols, 35);
    std::vector<float> dx(rows * cols, NAN), dw = prior_w, db = prior_b;
    layernorm_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), mean.data(),
                       rstd.data(), rows, cols);
    for (int64_t c = 0; c < cols; ++c) {
      dw[c] -= prior_w[c];
      db[c] -= prior_b[c];
    }

    std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(b), mean_ref,
                        rstd_ref;
    const std::vector<double> rd = to_double(r);
    const std::vector<double> y_ref = layernorm_reference(xd, wd, bd, rows, cols, &mean_ref,
                                                          &rstd_ref);
    auto loss = [&] { return dot(layernorm_reference(xd, wd, bd, rows, cols), rd); };
    // Normalised values are O(1) and each passes through ~log2(cols) float roundings of the
    // mean and variance sums; rstd reaches 1/sqrt(eps) ~ 316 for the constant row, so it gets
    // a relative bound.
    check_close("layernorm forward", y, y_ref, {1e-5, 1e-5});
    check_close("layernorm mean", mean.data(), mean_ref, {1e-6, 1e-6});
    check_close("layernorm rstd", rstd.data(), rstd_ref, {1e-5, 0.0});
    // dinp is rstd times a difference of O(1) row averages; dweight/dbias sum up to 300 rows
    // of O(1) terms, ~1e-5 in float.
    check_gradient("layernorm dinp", xd, loss, dx, {1e-4, 1e-5});
    check_gradient("layernorm dweight", wd, loss, dw, {1e-4, 1e-4});
    check_gradient("layernorm dbias", bd, loss, db, {1e-4, 1e-4});
  }
}
