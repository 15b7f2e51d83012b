// Tests of the CPU elementwise helpers (residual add, accumulate, scale) and of the residual
// connections of a transformer block built from them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>

#include "kernels/residual.h"
#include "runtime/compute/compute.h"
#include "runtime/model/transformer_block.h"
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

// The residual connections as the model uses them (runtime/model/transformer_block.cc): with
// both branches' output projections zero, a block computes y = x + 0 + 0, so by hand y = x and
// dL/dx = dL/dy exactly; the only path a gradient has is the two residual adds. A block that
// dropped or doubled a residual in forward or backward fails this (the branches' own
// gradients are checked against PyTorch in test_parity.cc).
TEST_CASE("residual connections: a block with silent branches is the identity, forward and backward",
          "[kernels][residual]") {
  using namespace tessera;
  TransformerBlock block("h.0", BlockShape{32, 4, 64}, 2, 0.02f, 7, TpGroup::single());
  for (Parameter* p : block.parameters()) {
    if (p->name.find("c_proj") != std::string::npos) std::fill_n(p->value.f32(), p->value.numel(), 0.0f);
  }
  const int64_t B = 2, T = 5, N = B * T;
  Tensor x = Tensor::empty({N, 32}), dy = Tensor::empty({N, 32});
  const std::vector<float> xs = random_floats(N * 32, 21), dys = random_floats(N * 32, 22);
  std::copy(xs.begin(), xs.end(), x.f32());
  std::copy(dys.begin(), dys.end(), dy.f32());
  const std::unique_ptr<Compute> compute = make_cpu_compute(Precision::FP32);
  MicrobatchContext ctx;
  ctx.compute = compute.get();
  ctx.tokens = Tensor::zeros({B, T}, DType::I32);
  const Tensor y = block.forward(x, ctx);
  const Tensor dx = block.backward(dy, ctx);
  CHECK(std::equal(y.f32(), y.f32() + y.numel(), xs.begin()));
  CHECK(std::equal(dx.f32(), dx.f32() + dx.numel(), dys.begin()));
}
