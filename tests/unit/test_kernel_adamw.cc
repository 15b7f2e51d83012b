// Tests of the CPU AdamW step against PyTorch's numbers and a double-precision reference.
// AdamW has no gradient of its own, so there is no finite-difference check here.
#include <catch2/catch.hpp>

#include <cmath>

#include "kernels/adamw.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

// Expected values printed by torch 2.x:
//   p = Parameter([1, -0.5, 0.25, 2]); AdamW([p], lr=1e-2, betas=(0.9, 0.99), eps=1e-8,
//   weight_decay=0.1); three steps with the gradients below.
// By hand, step 1 of p[0] (g = 0.5): decay 1 * (1 - 1e-3) = 0.999; m = 0.05, v = 0.0025;
// m_hat = 0.5, v_hat = 0.25; p = 0.999 - 1e-2 * 0.5 / 0.5 = 0.989.
TEST_CASE("kernel adamw reproduces torch.optim.AdamW", "[kernels][adamw]") {
  std::vector<float> p = {1.0f, -0.5f, 0.25f, 2.0f}, m(4, 0.0f), v(4, 0.0f);
  const std::vector<std::vector<float>> grads = {
      {0.5f, -0.25f, 0.0f, 3.0f}, {-0.1f, 0.2f, 1e-3f, 2.0f}, {0.3f, 0.3f, -1e-3f, -4.0f}};
  const std::vector<std::vector<double>> expected = {
      {0.9890000224113464, -0.4895000159740448, 0.24975000321865082, 1.9880000352859497},
      {0.9828900694847107, -0.4884289801120758, 0.24207577109336853, 1.9763001203536987},
      {0.975247859954834, -0.49198004603385925, 0.24228450655937195, 1.9740512371063232}};
  for (int64_t step = 1; step <= 3; ++step) {
    CAPTURE(step);
    adamw_update(p.data(), grads[step - 1].data(), m.data(), v.data(), 4, 1e-2f, 0.9f, 0.99f,
                 1e-8f, 0.1f, step);
    // Same float operations as PyTorch up to FMA contraction: within a few ulp (2^-24 ~ 6e-8).
    check_close("adamw param", p, expected[step - 1], {3e-7, 0.0});
  }
  // The betas arrive as float: 1 - 0.9f and 1 - 0.99f differ from PyTorch's double 1 - 0.9 and
  // 1 - 0.99 by ~1e-6 relative, which shows in the moments (the parameters above still agree).
  // m also cancels (0.9 * 0.47 - 0.4 = 0.023), so it gets an absolute bound of ~|g| 2.4e-8.
  check_close("adamw exp_avg", m,
              {0.061500001698732376, 0.027750002220273018, -9.999996109399945e-06,
               0.022999994456768036},
              {2e-6, 2e-7});
  check_close("adamw exp_avg_sq", v,
              {0.0034492502454668283, 0.0019085626117885113, 1.9900001646533383e-08,
               0.28780901432037354},
              {2e-6, 0.0});
}

// Several steps with changing gradients, both of torch.lerp's branches (beta1 = 0.9 and 0.3),
// and a size that takes the OpenMP path.
TEST_CASE("kernel adamw matches a double reference over several steps", "[kernels][adamw]") {
  for (float beta1 : {0.9f, 0.3f}) {
    for (size_t n : {size_t{5}, size_t{100003}}) {
      CAPTURE(beta1, n);
      const float lr = 3e-3f, beta2 = 0.95f, eps = 1e-8f, wd = 0.05f;
      std::vector<float> p = random_floats(n, 70), m(n, 0.0f), v(n, 0.0f);
      std::vector<double> pd = to_double(p), md(n, 0.0), vd(n, 0.0);
      for (int64_t step = 1; step <= 5; ++step) {
        const std::vector<float> g = random_floats(n, 71 + step);
        adamw_update(p.data(), g.data(), m.data(), v.data(), n, lr, beta1, beta2, eps, wd, step);
        const double bc1 = 1.0 - std::pow(beta1, step), bc2 = 1.0 - std::pow(beta2, step);
        for (size_t i = 0; i < n; ++i) {
          pd[i] *= 1.0 - static_cast<double>(lr) * wd;
          md[i] = beta1 * md[i] + (1.0 - beta1) * g[i];
          vd[i] = beta2 * vd[i] + (1.0 - beta2) * g[i] * static_cast<double>(g[i]);
          pd[i] -= lr * (md[i] / bc1) / (std::sqrt(vd[i] / bc2) + eps);
        }
      }
      // Each step moves p by <= ~lr with a relative error of a few ulp; after 5 steps the
      // float/double gap is ~1e-7 absolute. m is a running difference of O(1) gradients, so it
      // carries ~2^-24 absolute error per step; v the same relative to g^2.
      check_close("adamw param", p, pd, {1e-6, 1e-7});
      check_close("adamw m", m, md, {1e-5, 2e-7});
      check_close("adamw v", v, vd, {1e-5, 1e-8});
    }
  }
}

TEST_CASE("kernel adamw rejects a zero step", "[kernels][adamw]") {
  float p = 1.0f, g = 1.0f, m = 0.0f, v = 0.0f;
  CHECK_THROWS_WITH(adamw_update(&p, &g, &m, &v, 1, 1e-3f, 0.9f, 0.99f, 1e-8f, 0.0f, 0),
                    Catch::Contains("1-based"));
}

// Clipping folded into the update: the same bits as scaling the gradients in a pass of their own
// first (what the update did before), including an element that rounds on the multiply.
TEST_CASE("kernel adamw with a gradient scale equals scaling the gradients first", "[kernels][adamw]") {
  const size_t n = 100003;  // the OpenMP path, and a block remainder
  const float clip = 0.3183f;
  std::vector<float> p = random_floats(n, 60), m(n, 0.0f), v(n, 0.0f);
  std::vector<float> p2 = p, m2 = m, v2 = v;
  for (int64_t step = 1; step <= 3; ++step) {
    const std::vector<float> g = random_floats(n, 61 + step);
    std::vector<float> scaled = g;
    for (float& x : scaled) x *= clip;
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step, clip);
    adamw_update(p2.data(), scaled.data(), m2.data(), v2.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
  }
  CHECK(p == p2);
  CHECK(m == m2);
  CHECK(v == v2);
}
