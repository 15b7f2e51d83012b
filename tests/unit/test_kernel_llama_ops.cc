// Tests of the CPU kernels of the Llama block (RMSNorm, rotary embedding, SwiGLU, grouped
// key/value packing) against double-precision references, with finite-difference gradients.
#include <catch2/catch.hpp>

#include <cmath>

#include "kernels/gqa.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

namespace {

std::vector<double> rmsnorm_reference(const std::vector<double>& x, const std::vector<double>& w, int64_t rows,
                                      int64_t cols, double eps) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += x[r * cols + c] * x[r * cols + c];
    const double s = 1.0 / std::sqrt(ss / cols + eps);
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = x[r * cols + c] * s * w[c];
  }
  return y;
}

// The rotation in double from its definition: pair (i, i + D/2) turned by pos * base^(-2i/D).
std::vector<double> rope_reference(const std::vector<double>& x, int64_t rows, int64_t T, int64_t H, int64_t D,
                                   double base) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < D / 2; ++i) {
        const double angle = static_cast<double>(r % T) * std::pow(base, -2.0 * i / D);
        const int64_t a = r * H * D + h * D + i, b = a + D / 2;
        y[a] = x[a] * std::cos(angle) - x[b] * std::sin(angle);
        y[b] = x[b] * std::cos(angle) + x[a] * std::sin(angle);
      }
    }
  }
  return y;
}

std::vector<double> swiglu_reference(const std::vector<double>& g, const std::vector<double>& u) {
  std::vector<double> y(g.size());
  for (size_t i = 0; i < g.size(); ++i) y[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
  return y;
}

}  // namespace

// 130 rows x 96 columns crosses the OpenMP threshold, so the per-thread dweight slots are exercised.
TEST_CASE("kernel rmsnorm forward and backward match a double reference", "[kernels][rmsnorm]") {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{3, 5}, {130, 96}}) {
    CAPTURE(rows, cols);
    const double eps = 1e-5;
    const std::vector<float> x = random_floats(rows * cols, 1, -2, 2), w = random_floats(cols, 2, 0.5f, 1.5f);
    const std::vector<float> r = random_floats(rows * cols, 3);
    std::vector<float> y(x.size()), rstd(rows), dx(x.size(), NAN), dw(cols, 0.25f);
    rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), rows, cols, static_cast<float>(eps));
    rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), rows, cols);
    std::vector<double> xd = to_double(x), wd = to_double(w);
    const std::vector<double> rd = to_double(r);
    check_close("rmsnorm forward", y, rmsnorm_reference(xd, wd, rows, cols, eps), {1e-5, 1e-6});
    check_gradient("rmsnorm dx", xd, [&] { return dot(rmsnorm_reference(xd, wd, rows, cols, eps), rd); }, dx,
                   {1e-4, 1e-5});
    // dweight accumulates onto its 0.25 start.
    std::vector<float> dw_added(cols);
    for (int64_t c = 0; c < cols; ++c) dw_added[c] = dw[c] - 0.25f;
    check_gradient("rmsnorm dweight", wd, [&] { return dot(rmsnorm_reference(xd, wd, rows, cols, eps), rd); },
                   dw_added, {1e-4, 1e-5});
  }
}

TEST_CASE("kernel rope rotates pairs by position and its backward is the transpose", "[kernels][rope]") {
  const int64_t B = 2, T = 7, H = 3, D = 8, rows = B * T;
  const float base = 10000.f;
  std::vector<float> cos_t(T * D / 2), sin_t(T * D / 2);
  rope_tables(cos_t.data(), sin_t.data(), T, D, base);
  const std::vector<float> x = random_floats(rows * H * D, 4), r = random_floats(rows * H * D, 5);
  std::vector<float> y(x.size()), dx(x.size(), NAN);
  rope_forward(y.data(), x.data(), cos_t.data(), sin_t.data(), rows, T, H, D);
  rope_backward(dx.data(), r.data(), cos_t.data(), sin_t.data(), rows, T, H, D);
  std::vector<double> xd = to_double(x);
  const std::vector<double> rd = to_double(r);
  // Angles up to 6 rad are rounded to float as transformers rounds them: ~5e-7 absolute.
  check_close("rope forward", y, rope_reference(xd, rows, T, H, D, base), {1e-5, 2e-6});
  check_gradient("rope dx", xd, [&] { return dot(rope_reference(xd, rows, T, H, D, base), rd); }, dx, {1e-4, 2e-6});
  // Position 0 is the identity; in place gives the same result.
  for (int64_t i = 0; i < H * D; ++i) CHECK(y[i] == x[i]);
  std::vector<float> inplace = x;
  rope_forward(inplace.data(), inplace.data(), cos_t.data(), sin_t.data(), rows, T, H, D);
  CHECK(inplace == y);
}

TEST_CASE("kernel swiglu forward and backward match a double reference", "[kernels][swiglu]") {
  for (size_t n : {size_t{1}, size_t{9}, size_t{70001}}) {
    CAPTURE(n);
    const std::vector<float> g = random_floats(n, 6, -6, 6), u = random_floats(n, 7, -2, 2), r = random_floats(n, 8);
    std::vector<float> y(n), dg(n, NAN), du(n, NAN);
    swiglu_forward(y.data(), g.data(), u.data(), n);
    swiglu_backward(dg.data(), du.data(), g.data(), u.data(), r.data(), n);
    std::vector<double> gd = to_double(g), ud = to_double(u);
    const std::vector<double> rd = to_double(r);
    check_close("swiglu forward", y, swiglu_reference(gd, ud), {1e-5, 1e-6});
    const size_t coords = n > 10000 ? 12 : 48;
    check_gradient("swiglu dgate", gd, [&] { return dot(swiglu_reference(gd, ud), rd); }, dg, {1e-4, 1e-5}, coords);
    check_gradient("swiglu dup", ud, [&] { return dot(swiglu_reference(gd, ud), rd); }, du, {1e-4, 1e-5}, coords);
  }
}

// Packing is linear, so the finite-difference check of its backward is exact up to rounding;
// the forward is checked element by element against repeat_kv's head -> group map.
TEST_CASE("kernel gqa packing repeats each key/value group over its heads", "[kernels][gqa]") {
  for (auto [H, G] : {std::pair<int64_t, int64_t>{4, 4}, {4, 2}, {6, 1}}) {
    CAPTURE(H, G);
    const int64_t rows = 5, D = 4, A = H * D, Kw = G * D;
    const std::vector<float> q = random_floats(rows * A, 9), kk = random_floats(rows * Kw, 10),
                             v = random_floats(rows * Kw, 11), r = random_floats(rows * 3 * A, 12);
    std::vector<float> qkv(rows * 3 * A);
    gqa_pack_forward(qkv.data(), q.data(), kk.data(), v.data(), rows, H, G, D);
    for (int64_t n = 0; n < rows; ++n) {
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t d = 0; d < D; ++d) {
          const int64_t g = h / (H / G);
          CHECK(qkv[n * 3 * A + h * D + d] == q[n * A + h * D + d]);
          CHECK(qkv[n * 3 * A + A + h * D + d] == kk[n * Kw + g * D + d]);
          CHECK(qkv[n * 3 * A + 2 * A + h * D + d] == v[n * Kw + g * D + d]);
        }
      }
    }
    std::vector<float> dq(rows * A, NAN), dk(rows * Kw, NAN), dv(rows * Kw, NAN);
    gqa_pack_backward(dq.data(), dk.data(), dv.data(), r.data(), rows, H, G, D);
    std::vector<double> qd = to_double(q), kd = to_double(kk), vd = to_double(v);
    auto loss = [&] {
      std::vector<double> out(rows * 3 * A);
      // The reference packing in double, independent of the kernel.
      for (int64_t n = 0; n < rows; ++n) {
        for (int64_t h = 0; h < H; ++h) {
          for (int64_t d = 0; d < D; ++d) {
            const int64_t g = h / (H / G);
            out[n * 3 * A + h * D + d] = qd[n * A + h * D + d];
            out[n * 3 * A + A + h * D + d] = kd[n * Kw + g * D + d];
            out[n * 3 * A + 2 * A + h * D + d] = vd[n * Kw + g * D + d];
          }
        }
      }
      return dot(out, to_double(r));
    };
    check_gradient("gqa dq", qd, loss, dq, {1e-5, 1e-6});
    check_gradient("gqa dk", kd, loss, dk, {1e-5, 1e-6});
    check_gradient("gqa dv", vd, loss, dv, {1e-5, 1e-6});
  }
}
