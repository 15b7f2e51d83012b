// Tests of the CPU GEMM (against a naive triple loop) and the Linear forward/backward.
#include <catch2/catch.hpp>

#include <cmath>
#include <tuple>

#include "kernels/matmul.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

namespace {

constexpr double kUnitRoundoff = 1.0 / (1 << 24);

// Reference out = inp * weight^T + bias in double, nn.Linear layout.
std::vector<double> linear_reference(const std::vector<double>& inp, const std::vector<double>& w,
                                     const std::vector<double>* bias, int64_t rows, int64_t in,
                                     int64_t out) {
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double s = bias ? (*bias)[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += inp[r * in + i] * w[o * in + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

}  // namespace

// Shapes: scalar, odd, K = 0 (C = beta C), and one big enough that C is split across threads.
// Every leading dimension is padded by 3 so a kernel that assumes packed rows is caught, and
// C's padding holds a sentinel that must survive.
TEST_CASE("kernel gemm matches a naive triple loop", "[kernels][matmul][gemm]") {
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {
      {1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {4, 3, 0}, {64, 70, 130}};
  const float alpha = 0.7f, sentinel = 42.0f;
  const int64_t pad = 3;
  for (auto [M, N, K] : shapes) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (float beta : {0.0f, 1.0f, -0.5f}) {
          CAPTURE(M, N, K, ta, tb, beta);
          const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
          const std::vector<float> A = random_floats((ta ? K : M) * lda, 20);
          const std::vector<float> B = random_floats((tb ? N : K) * ldb, 21);
          std::vector<float> C = random_floats(M * ldc, 22);
          // beta = 0 must not read C, as in BLAS: NaNs there must not leak into the result.
          for (int64_t i = 0; i < M; ++i) {
            for (int64_t j = 0; j < ldc; ++j) {
              if (j >= N) C[i * ldc + j] = sentinel;
              else if (beta == 0.0f) C[i * ldc + j] = NAN;
            }
          }
          const std::vector<float> C0 = C;
          gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);

          int64_t bad = 0;
          for (int64_t i = 0; i < M; ++i) {
            for (int64_t j = 0; j < ldc; ++j) {
              const float got = C[i * ldc + j];
              if (j >= N) {
                bad += got != sentinel;
                continue;
              }
              double s = 0.0, abs_sum = 0.0;
              for (int64_t k = 0; k < K; ++k) {
                const double a = ta ? A[k * lda + i] : A[i * lda + k];
                const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
                abs_sum += std::abs(a * b);
              }
              const double c = beta == 0.0f ? 0.0 : beta * static_cast<double>(C0[i * ldc + j]);
              // The classic bound for a float dot product in any summation order (FMA or not),
              // |error| <= K u sum|a b|, with slack for the alpha and beta roundings.
              const double bound =
                  (K + 3) * kUnitRoundoff * (alpha * abs_sum + std::abs(c)) + 1e-30;
              bad += !(std::abs(got - (alpha * s + c)) <= bound);
            }
          }
          CHECK(bad == 0);
        }
      }
    }
  }
}

// Shapes: scalar, odd, and one that takes the threaded path (70 x 33 x 65, odd everywhere).
TEST_CASE("kernel linear forward and backward match a double reference",
          "[kernels][matmul][linear]") {
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {
      {1, 1, 1}, {3, 5, 7}, {13, 17, 11}, {70, 33, 65}};
  for (auto [rows, in, out] : shapes) {
    CAPTURE(rows, in, out);
    const std::vector<float> x = random_floats(rows * in, 23), w = random_floats(out * in, 24),
                             b = random_floats(out, 25), r = random_floats(rows * out, 26);
    std::vector<float> y(rows * out, NAN), y_nobias(rows * out, NAN);
    linear_forward(y.data(), x.data(), w.data(), b.data(), rows, in, out);
    linear_forward(y_nobias.data(), x.data(), w.data(), nullptr, rows, in, out);

    // dinp is written over garbage; dweight and dbias accumulate onto a prior value.
    const std::vector<float> prior_w = random_floats(out * in, 27),
                             prior_b = random_floats(out, 28);
    std::vector<float> dx(rows * in, NAN), dw = prior_w, db = prior_b;
    linear_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), rows, in, out);
    std::vector<float> dw_only = prior_w;
    linear_backward(nullptr, dw_only.data(), nullptr, r.data(), x.data(), w.data(), rows, in, out);
    CHECK(dw_only == dw);
    for (size_t i = 0; i < dw.size(); ++i) dw[i] -= prior_w[i];
    for (size_t i = 0; i < db.size(); ++i) db[i] -= prior_b[i];

    std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(b);
    const std::vector<double> rd = to_double(r);
    auto loss = [&] { return dot(linear_reference(xd, wd, &bd, rows, in, out), rd); };
    // Float dot products of <= 70 terms of O(1) values round by ~sqrt(70) u |terms| ~ 1e-6;
    // removing the O(1) prior adds ~1e-7. 1e-5 leaves margin; a wrong formula is O(1) off.
    const Tolerance tol{1e-4, 1e-5};
    check_close("linear forward", y, linear_reference(xd, wd, &bd, rows, in, out), tol);
    check_close("linear forward without bias", y_nobias,
                linear_reference(xd, wd, nullptr, rows, in, out), tol);
    check_gradient("linear dinp", xd, loss, dx, tol);
    check_gradient("linear dweight", wd, loss, dw, tol);
    check_gradient("linear dbias", bd, loss, db, tol);
  }
}
