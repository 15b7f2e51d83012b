// One harness for every op of every Backend present: each op runs on each backend with the same
// seeded inputs and is compared with the fp32 Eigen reference backend by normalised error
// (||out - ref|| / ||ref||), as ggml's test-backend-ops does. Low-precision matmuls are compared
// with tolerances of their format: bf16 keeps 8 significant bits (unit roundoff u = 2^-8 ~ 3.9e-3;
// a uniformly rounded input errs by u/sqrt(3) in RMS), so a product of two rounded inputs has a
// normalised error of about sqrt(2) * u / sqrt(3) ~ 3.2e-3; fp16 keeps 11 bits (u = 2^-11, ~4e-4).
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <algorithm>
#include <array>

#include "runtime/compute/compute.h"
#include "runtime/compute/cpu_backend.h"

namespace tessera {
namespace {

Tensor random_tensor(const Shape& shape, uint32_t seed, float scale = 1.f) {
  Tensor t = Tensor::empty(shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = dist(rng);
  return t;
}

double normalized_error(const Tensor& out, const Tensor& ref) {
  REQUIRE(out.shape() == ref.shape());
  double err = 0, norm = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = static_cast<double>(out.f32()[i]) - ref.f32()[i];
    err += d * d;
    norm += static_cast<double>(ref.f32()[i]) * ref.f32()[i];
  }
  return std::sqrt(err / std::max(norm, 1e-30));
}

// The backends of this build: the reference first.
std::vector<std::unique_ptr<Backend>> backends() {
  std::vector<std::unique_ptr<Backend>> b;
  b.push_back(std::make_unique<CpuBackend>(CpuGemm::Eigen));
  b.push_back(std::make_unique<CpuBackend>(CpuGemm::OneDnn));
  return b;
}

// An op under test: fills `outs` from fixed inputs using backend `b`.
using Op = std::function<std::vector<Tensor>(Backend& b)>;

void check_op_on_every_backend(const std::string& name, const Op& op, double tolerance = 1e-6) {
  auto all = backends();
  const std::vector<Tensor> ref = op(*all.front());
  for (size_t i = 1; i < all.size(); ++i) {
    const std::vector<Tensor> out = op(*all[i]);
    REQUIRE(out.size() == ref.size());
    for (size_t k = 0; k < out.size(); ++k) {
      INFO(name << " output " << k << " on " << all[i]->name());
      CHECK(normalized_error(out[k], ref[k]) <= tolerance);
    }
  }
}

Tensor cast_to(Backend& b, const Tensor& x, DType dtype) {
  Tensor c = Tensor::empty(x.shape(), dtype);
  b.cast(x, c);
  return c;
}

}  // namespace

TEST_CASE("every backend: matmul in fp32, every transpose, bias and accumulate", "[backend]") {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const int64_t M = 37, N = 29, K = 53;
      const Tensor a = random_tensor(ta ? Shape{K, M} : Shape{M, K}, 1), b = random_tensor(tb ? Shape{N, K} : Shape{K, N}, 2);
      const Tensor bias = random_tensor({N}, 3), c0 = random_tensor({M, N}, 4);
      check_op_on_every_backend("matmul", [&](Backend& be) {
        Tensor c = c0.clone(), d = Tensor::empty({M, N});
        be.matmul({a, ta, b, tb, c, nullptr, true});
        be.matmul({a, ta, b, tb, d, &bias, false});
        return std::vector<Tensor>{c, d};
      });
    }
  }
}

TEST_CASE("every backend: bf16 and fp16 matmul against the fp32 reference, format tolerances", "[backend]") {
  CpuBackend reference(CpuGemm::Eigen), onednn(CpuGemm::OneDnn);
  const int64_t M = 64, N = 96, K = 256;
  const Tensor a = random_tensor({M, K}, 5), b = random_tensor({N, K}, 6), bias = random_tensor({N}, 7);
  Tensor ref = Tensor::empty({M, N});
  reference.matmul({a, false, b, true, ref, &bias, false});
  // oneDNN multiplies bf16 natively and widens fp16; Eigen widens both. The same rounded inputs,
  // so the same error bounds.
  for (Backend* be : {static_cast<Backend*>(&onednn), static_cast<Backend*>(&reference)}) {
    for (auto [dtype, tol] : {std::pair{DType::BF16, 6e-3}, std::pair{DType::F16, 8e-4}}) {
      Tensor out = Tensor::empty({M, N});
      be->matmul({cast_to(*be, a, dtype), false, cast_to(*be, b, dtype), true, out, &bias, false});
      const double err = normalized_error(out, ref);
      INFO(be->name() << " " << dtype_name(dtype) << " normalised error " << err);
      CHECK(err <= tol);
      // And not better than the format allows: the inputs really were rounded.
      CHECK(err >= tol / 100);
    }
  }
}

// bf16 attention (oneDNN's batched bf16 products around an fp32 softmax) against the fp32 Eigen
// reference. Each score is a D-term product of rounded q and k; each output and gradient a
// T-term product with rounded probabilities, values and gradients: errors of the same size as
// a bf16 matmul's (~3e-3 normalised, see the top of this file), which the softmax's exponential
// can widen where scores are large. Measured 1.5e-3 .. 3.9e-3 on these shapes; 1e-2 allows
// softmax amplification, and the lower bound proves that the products really ran in bf16.
TEST_CASE("every backend: bf16 attention against the fp32 reference, format tolerances", "[backend]") {
  CpuBackend reference(CpuGemm::Eigen), onednn(CpuGemm::OneDnn);
  // A single position, T not a multiple of the 16-float vector, an odd head size, a GPT-like
  // head (D 64) with several batches, and T over two row blocks plus a partial one (150 = 2 * 64
  // + 22): the blocks see 64, 128 and 150 keys.
  const std::vector<std::array<int64_t, 4>> shapes = {
      {1, 1, 1, 8}, {2, 33, 3, 8}, {1, 20, 2, 5}, {2, 64, 4, 64}, {2, 150, 2, 16}};
  for (auto [B, T, H, D] : shapes) {
    CAPTURE(B, T, H, D);
    const Tensor qkv = random_tensor({B * T, 3 * H * D}, 20), dout = random_tensor({B * T, H * D}, 21);
    Tensor ref = Tensor::empty({B * T, H * D}), dref = Tensor::empty({B * T, 3 * H * D});
    const Tensor probs = reference.attention_forward(ref, qkv, B, T, H, D);
    reference.attention_backward(dref, dout, qkv, probs, B, T, H, D);
    Tensor out = Tensor::empty({B * T, H * D}, DType::BF16), dqkv = Tensor::empty({B * T, 3 * H * D});
    const Tensor saved = onednn.attention_forward(out, qkv, B, T, H, D);
    CHECK(saved.dtype() == DType::BF16);
    onednn.attention_backward(dqkv, dout, qkv, saved, B, T, H, D);
    const double err_out = normalized_error(cast_to(onednn, out, DType::F32), ref);
    const double err_grad = normalized_error(dqkv, dref);
    INFO("normalised error: out " << err_out << ", dqkv " << err_grad);
    CHECK(err_out <= 1e-2);
    CHECK(err_grad <= 1e-2);
    // T = 1 attends to itself only: out is v, rounded to bf16, and exact gradients stay small.
    if (T > 1) {
      CHECK(err_out >= 1e-4);
      CHECK(err_grad >= 1e-4);
    }
  }
}

// Backends that cannot multiply in a 16-bit dtype (Eigen; fp16 on this oneDNN 2.6) round q, k, v,
// the probabilities (and backward dout and dS) to it and multiply in fp32. Errors against the fp32
// reference scale with the format's unit roundoff (bf16 2^-9 ~ 2e-3, fp16 2^-12 ~ 2.4e-4),
// amplified as for the bf16 kernel above: measured bf16 3.6e-3 / 3.8e-3 (out / dqkv), fp16
// 4.4e-4 / 4.6e-4 here. The upper bounds leave 2-3x; the lower bounds (a tenth of the unit
// roundoff) fail if the inputs were not rounded: an fp32 computation differs by ~1e-7.
TEST_CASE("every backend: 16-bit attention without a 16-bit product rounds its inputs", "[backend]") {
  CpuBackend reference(CpuGemm::Eigen), onednn(CpuGemm::OneDnn);
  const int64_t B = 2, T = 70, H = 2, D = 8;  // two row blocks
  const Tensor qkv = random_tensor({B * T, 3 * H * D}, 22), dout = random_tensor({B * T, H * D}, 23);
  Tensor ref = Tensor::empty({B * T, H * D}), dref = Tensor::empty({B * T, 3 * H * D});
  const Tensor probs = reference.attention_forward(ref, qkv, B, T, H, D);
  reference.attention_backward(dref, dout, qkv, probs, B, T, H, D);
  struct Case {
    Backend* be;
    DType dtype;
    double upper, lower;
  };
  const std::vector<Case> cases = {{&reference, DType::BF16, 1e-2, 2e-4},
                                   {&reference, DType::F16, 1e-3, 2.5e-5},
                                   {&onednn, DType::F16, 1e-3, 2.5e-5}};
  for (const Case& c : cases) {
    Tensor out = Tensor::empty({B * T, H * D}, c.dtype), dqkv = Tensor::empty({B * T, 3 * H * D});
    const Tensor saved = c.be->attention_forward(out, qkv, B, T, H, D);
    CHECK(saved.dtype() == c.dtype);
    c.be->attention_backward(dqkv, dout, qkv, saved, B, T, H, D);
    const double err_out = normalized_error(cast_to(*c.be, out, DType::F32), ref);
    const double err_grad = normalized_error(dqkv, dref);
    INFO(c.be->name() << " " << dtype_name(c.dtype) << " normalised error: out " << err_out << ", dqkv " << err_grad);
    CHECK(err_out <= c.upper);
    CHECK(err_grad <= c.upper);
    CHECK(err_out >= c.lower);
    CHECK(err_grad >= c.lower);
  }
}

// LayerNorm and GELU write GEMM inputs in the compute dtype in one pass, and a Linear's bias
// gradient pass also writes its rounded output gradient; each value must be the
// fp32 op's result rounded once, bit for bit. Sizes: a ragged row (not a multiple of the 16-float
// vector) and tensors large enough for the threaded path.
TEST_CASE("every backend: layernorm, gelu and bias-gradient casts in bf16/fp16 are the fp32 results rounded once",
          "[backend]") {
  for (auto& be : backends()) {
    for (auto [rows, C] : {std::pair<int64_t, int64_t>{3, 37}, std::pair<int64_t, int64_t>{256, 512}}) {
      const Tensor x = random_tensor({rows, C}, 30, 2.f), w = random_tensor({C}, 31), b = random_tensor({C}, 32);
      Tensor ln = Tensor::empty({rows, C}), mean = Tensor::empty({rows}), rstd = Tensor::empty({rows});
      be->layernorm_forward(ln, mean, rstd, x, w, b);
      Tensor g = Tensor::empty({rows, C});
      be->gelu_forward(g, x);
      for (DType dtype : {DType::BF16, DType::F16}) {
        INFO(be->name() << " " << dtype_name(dtype) << " rows " << rows << " C " << C);
        Tensor ln16 = Tensor::empty({rows, C}, dtype), mean16 = Tensor::empty({rows}), rstd16 = Tensor::empty({rows});
        be->layernorm_forward(ln16, mean16, rstd16, x, w, b);
        Tensor g16 = Tensor::empty({rows, C}, dtype);
        be->gelu_forward(g16, x);
        const Tensor ln_rounded = cast_to(*be, ln, dtype), g_rounded = cast_to(*be, g, dtype);
        CHECK(std::equal(ln16.data<uint16_t>(), ln16.data<uint16_t>() + ln16.numel(), ln_rounded.data<uint16_t>()));
        CHECK(std::equal(g16.data<uint16_t>(), g16.data<uint16_t>() + g16.numel(), g_rounded.data<uint16_t>()));
        CHECK(std::equal(mean16.f32(), mean16.f32() + rows, mean.f32()));
        CHECK(std::equal(rstd16.f32(), rstd16.f32() + rows, rstd.f32()));
        // A Linear's output gradient: bias sums and the rounded copy in one pass.
        Tensor db = random_tensor({C}, 33), db_fused = db.clone(), x16 = Tensor::empty({rows, C}, dtype);
        be->bias_backward(db, x);
        be->bias_backward_cast(db_fused, x16, x);
        const Tensor x_rounded = cast_to(*be, x, dtype);
        CHECK(std::equal(db_fused.f32(), db_fused.f32() + C, db.f32()));
        CHECK(std::equal(x16.data<uint16_t>(), x16.data<uint16_t>() + x16.numel(), x_rounded.data<uint16_t>()));
        // A Linear feeding a GELU: the GELU gradient summed into the bias and rounded, one pass.
        const Tensor dact = random_tensor({rows, C}, 34);
        Tensor dgelu = Tensor::empty({rows, C});
        be->gelu_backward(dgelu, x, dact);
        Tensor dbg = random_tensor({C}, 35), dbg_fused = dbg.clone(), dgelu16 = Tensor::empty({rows, C}, dtype);
        be->bias_backward(dbg, dgelu);
        be->gelu_backward_bias_cast(dbg_fused, dgelu16, x, dact);
        const Tensor dgelu_rounded = cast_to(*be, dgelu, dtype);
        if (C % 16 == 0) {
          CHECK(std::equal(dbg_fused.f32(), dbg_fused.f32() + C, dbg.f32()));
          CHECK(std::equal(dgelu16.data<uint16_t>(), dgelu16.data<uint16_t>() + dgelu16.numel(),
                           dgelu_rounded.data<uint16_t>()));
        } else {
          // A ragged row takes Eigen's scalar tanh where the flat pass took its vector one (and
          // the reverse): a few fp32 ulp apart, at most one 16-bit rounding step.
          CHECK(normalized_error(dbg_fused, dbg) < 1e-6);
          CHECK(normalized_error(cast_to(*be, dgelu16, DType::F32), cast_to(*be, dgelu_rounded, DType::F32)) <
                (dtype == DType::BF16 ? 4e-3 : 5e-4));
        }
      }
    }
  }
}

TEST_CASE("every backend: casts round to nearest even and keep inf/NaN", "[backend]") {
  CpuBackend be(CpuGemm::OneDnn);
  Tensor x = Tensor::empty({6});
  // 1 + 2^-8 is a bf16 tie: rounds to even (1.0); 1 + 3*2^-9 rounds up to 1 + 2^-7.
  const float in[6] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-9f, -2.5f, INFINITY, NAN, 70000.f};
  std::copy(in, in + 6, x.f32());
  Tensor back = Tensor::empty({6});
  be.cast(cast_to(be, x, DType::BF16), back);
  CHECK(back.f32()[0] == 1.0f);
  CHECK(back.f32()[1] == 1.0f + 0x1p-7f);
  CHECK(back.f32()[2] == -2.5f);
  CHECK(std::isinf(back.f32()[3]));
  CHECK(std::isnan(back.f32()[4]));
  be.cast(cast_to(be, x, DType::F16), back);
  CHECK(back.f32()[0] == 1.0f + 0x1p-8f);  // exact in fp16 (10 fraction bits)
  CHECK(back.f32()[2] == -2.5f);
  CHECK(std::isinf(back.f32()[5]));  // beyond 65504: overflow, what the fp16 loss scaler detects
  // A long buffer goes through the vector path; every element must round like the scalar one.
  const Tensor big = random_tensor({1000}, 8);
  const Tensor rt = cast_to(be, cast_to(be, big, DType::BF16), DType::F32);
  for (int64_t i = 0; i < big.numel(); ++i) {
    CHECK(std::fabs(rt.f32()[i] - big.f32()[i]) <= std::fabs(big.f32()[i]) * 0x1p-8f);
  }
}

TEST_CASE("every backend: the non-GEMM ops agree with the reference", "[backend]") {
  const int64_t B = 2, T = 8, H = 2, D = 4, C = 12, rows = B * T, V = 10;
  const Tensor x = random_tensor({rows, C}, 10), w = random_tensor({C}, 11), bvec = random_tensor({C}, 12);
  const Tensor dout = random_tensor({rows, C}, 13), qkv = random_tensor({rows, 3 * H * D}, 14);
  const Tensor datt = random_tensor({rows, H * D}, 15), logits = random_tensor({rows, V}, 16);
  Tensor targets = Tensor::empty({rows}, DType::I32);
  for (int64_t i = 0; i < rows; ++i) targets.i32()[i] = static_cast<int32_t>((i * 7) % V);
  check_op_on_every_backend("layernorm", [&](Backend& be) {
    Tensor out = Tensor::empty({rows, C}), mean = Tensor::empty({rows}), rstd = Tensor::empty({rows});
    be.layernorm_forward(out, mean, rstd, x, w, bvec);
    Tensor dx = Tensor::empty({rows, C}), dw = Tensor::zeros({C}), db = Tensor::zeros({C});
    be.layernorm_backward(dx, dw, db, dout, x, w, mean, rstd);
    return std::vector<Tensor>{out, dx, dw, db};
  });
  check_op_on_every_backend("attention", [&](Backend& be) {
    Tensor out = Tensor::empty({rows, H * D}), dqkv = Tensor::empty({rows, 3 * H * D});
    const Tensor saved = be.attention_forward(out, qkv, B, T, H, D);
    be.attention_backward(dqkv, datt, qkv, saved, B, T, H, D);
    return std::vector<Tensor>{out, dqkv};
  });
  check_op_on_every_backend("gelu, relu, bias, residual", [&](Backend& be) {
    Tensor g = Tensor::empty({rows, C}), dg = Tensor::empty({rows, C}), r = Tensor::empty({rows, C});
    Tensor dr = Tensor::empty({rows, C}), sum = Tensor::empty({rows, C}), db = Tensor::zeros({C});
    be.gelu_forward(g, x);
    be.gelu_backward(dg, x, dout);
    be.relu_forward(r, x);
    be.relu_backward(dr, x, dout);
    be.residual_forward(sum, x, dout);
    be.accumulate(sum, g);
    be.bias_forward(sum, bvec);
    be.bias_backward(db, dout);
    return std::vector<Tensor>{g, dg, r, dr, sum, db};
  });
  check_op_on_every_backend("cross entropy", [&](Backend& be) {
    Tensor row_max = Tensor::empty({rows}), sum_exp = Tensor::empty({rows}), tl = Tensor::empty({rows});
    be.cross_entropy_row_max(row_max, logits, V - 1);
    be.cross_entropy_partial_sums(sum_exp, tl, logits, row_max, targets, V - 1, 0);
    Tensor loss = Tensor::empty({rows}), dlogits = Tensor::empty({rows, V});
    be.cross_entropy_loss(loss, row_max, sum_exp, tl);
    be.cross_entropy_backward(dlogits, logits, row_max, sum_exp, targets, Tensor::full({rows}, 0.5f), V - 1, 0);
    return std::vector<Tensor>{loss, dlogits};
  });
  check_op_on_every_backend("embedding", [&](Backend& be) {
    const Tensor wte = random_tensor({V, C}, 17), wpe = random_tensor({T, C}, 18);
    Tensor out = Tensor::empty({rows, C}), dwte = Tensor::zeros({V, C}), dwpe = Tensor::zeros({T, C});
    be.token_embedding_forward(out, targets, wte, 0);
    be.position_embedding_forward(out, wpe, B, T);
    be.token_embedding_backward(dwte, dout, targets, 0);
    be.position_embedding_backward(dwpe, dout, B, T);
    return std::vector<Tensor>{out, dwte, dwpe};
  });
}

TEST_CASE("every backend: the squared norm's total is the per-tensor sums added in order, rounded once",
          "[backend]") {
  const Tensor a = random_tensor({300}, 51), b = random_tensor({7, 13}, 52), c = Tensor::full({2}, 1e30f);
  for (auto& be : backends()) {
    INFO(be->name());
    const std::vector<double> sums = be->sum_squares({&a, &b});
    Tensor total = Tensor::empty({1});
    be->sum_squares_total({&a, &b}, total);
    CHECK(total.f32()[0] == static_cast<float>(sums[0] + sums[1]));
    be->sum_squares_total({}, total);
    CHECK(total.f32()[0] == 0.f);
    // Squares beyond fp32 are summed in double; only the total overflows fp32, to infinity.
    be->sum_squares_total({&c}, total);
    CHECK(std::isinf(total.f32()[0]));
  }
}

}  // namespace tessera
