// The CUDA backend against the CPU reference, op by op, through device tensors: inputs are made on
// the host, uploaded with the explicit copies, run by CudaBackend and downloaded, then compared
// with CpuBackend(Eigen) by normalised error, as tests/unit/test_backend_ops.cc does for the CPU
// backends. Built twice: against the emulated kernels and cuBLASLt (CI, no GPU) and against the
// real ones (the device check). Tolerances: fp32 ops 1e-5 — the emulation's arithmetic is the
// host's, but the kernels sum in other orders (tree reductions, flash attention's online softmax)
// than the CPU loops, which costs a few ulps on sums of up to 53 terms; bf16 GEMMs those of the
// format (bf16 6e-3, fp16 8e-4, the derivation in test_backend_ops.cc), with a lower bound proving
// the rounding.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>

#include "runtime/compute/cpu_backend.h"
#include "runtime/compute/cuda_backend.h"
#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

std::shared_ptr<CudaContext> context() {
  static std::shared_ptr<CudaContext> ctx = start_cuda_device(0, false);
  return ctx;
}

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

// An op under test: given a backend and where its tensors live, returns its outputs.
using Op = std::function<std::vector<Tensor>(Backend& b, Device d)>;

// Runs `op` on the CPU reference and on CUDA (inputs uploaded by the op through `in`), and
// compares every output after the download.
void check_op(const std::string& name, const Op& op, double tolerance = 1e-5) {
  CpuBackend reference(CpuGemm::Eigen);
  CudaBackend cuda(context());
  const std::vector<Tensor> ref = op(reference, Device::cpu());
  const std::vector<Tensor> out = op(cuda, cuda.device());
  REQUIRE(out.size() == ref.size());
  for (size_t k = 0; k < out.size(); ++k) {
    INFO(name << " output " << k);
    REQUIRE(out[k].device() == cuda.device());
    CHECK(normalized_error(to_device(out[k], Device::cpu()), ref[k]) <= tolerance);
  }
}

// A fresh copy of `host` on d (a copy on the CPU too: ops that work in place must not change the
// inputs the other backend reads next).
Tensor on(const Tensor& host, Device d) { return d.is_cpu() ? host.clone() : to_device(host, d); }

}  // namespace

TEST_CASE("cuda backend: fp32 matmul, every transpose, fused bias and accumulate", "[cuda_backend]") {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const int64_t M = 37, N = 29, K = 53;
      const Tensor a = random_tensor(ta ? Shape{K, M} : Shape{M, K}, 1);
      const Tensor b = random_tensor(tb ? Shape{N, K} : Shape{K, N}, 2);
      const Tensor bias = random_tensor({N}, 3), c0 = random_tensor({M, N}, 4);
      check_op("matmul", [&](Backend& be, Device d) {
        Tensor c = on(c0, d), e = Tensor::empty({M, N}, DType::F32, d), f = Tensor::empty({M, N}, DType::F32, d);
        const Tensor ad = on(a, d), bd = on(b, d), biasd = on(bias, d);
        be.matmul({ad, ta, bd, tb, c, nullptr, true});
        be.matmul({ad, ta, bd, tb, e, nullptr, false});
        be.matmul({ad, ta, bd, tb, f, &biasd, false});
        return std::vector<Tensor>{c, e, f};
      });
    }
  }
}

TEST_CASE("cuda backend: bf16 and fp16 matmul within the format's tolerance of fp32", "[cuda_backend]") {
  CpuBackend reference(CpuGemm::Eigen);
  CudaBackend cuda(context());
  const int64_t M = 16, N = 24, K = 64;
  const Tensor a = random_tensor({M, K}, 5), b = random_tensor({N, K}, 6), bias = random_tensor({N}, 7);
  Tensor ref = Tensor::empty({M, N});
  reference.matmul({a, false, b, true, ref, &bias, false});
  // The bounds of test_backend_ops.cc: the inputs' rounding (bf16 u = 2^-8, fp16 u = 2^-11) shows
  // as a normalised error between a hundredth and about twice that unit.
  for (auto [dtype, tol] : {std::pair{DType::BF16, 6e-3}, std::pair{DType::F16, 8e-4}}) {
    INFO(dtype_name(dtype));
    Tensor a16 = Tensor::empty({M, K}, dtype, cuda.device()), b16 = Tensor::empty({N, K}, dtype, cuda.device());
    cuda.cast(on(a, cuda.device()), a16);
    cuda.cast(on(b, cuda.device()), b16);
    Tensor out = Tensor::empty({M, N}, DType::F32, cuda.device());
    const Tensor dbias = on(bias, cuda.device());
    cuda.matmul({a16, false, b16, true, out, &dbias, false});
    const double err = normalized_error(to_device(out, Device::cpu()), ref);
    INFO("normalised error " << err);
    CHECK(err <= tol);
    CHECK(err >= tol / 100);
    CHECK(cuda.native_matmul(dtype));
  }
}

TEST_CASE("cuda backend: fp16 casts round to nearest even and overflow to infinity", "[cuda_backend]") {
  CudaBackend cuda(context());
  Tensor x = Tensor::empty({4});
  float* p = x.f32();
  p[0] = 1.0f + 0x1p-10f;           // exact in fp16 (10 fraction bits)
  p[1] = 1.0f + 0x1p-11f;           // a tie: to even, 1
  p[2] = 70000.0f;                  // beyond 65504: infinity, what the loss scaler detects
  p[3] = -0x1p-24f;                 // the smallest subnormal
  Tensor h = Tensor::empty({4}, DType::F16, cuda.device()), back = Tensor::empty({4}, DType::F32, cuda.device());
  cuda.cast(on(x, cuda.device()), h);
  cuda.cast(h, back);
  const Tensor r = to_device(back, Device::cpu());
  CHECK(r.f32()[0] == 1.0f + 0x1p-10f);
  CHECK(r.f32()[1] == 1.0f);
  CHECK(std::isinf(r.f32()[2]));
  CHECK(r.f32()[3] == -0x1p-24f);
}

TEST_CASE("cuda backend: norms, attention, activations, embedding and cross-entropy", "[cuda_backend]") {
  const int64_t B = 2, T = 8, H = 2, D = 4, C = 12, rows = B * T, V = 10;
  const Tensor x = random_tensor({rows, C}, 10), w = random_tensor({C}, 11), bvec = random_tensor({C}, 12);
  const Tensor dout = random_tensor({rows, C}, 13), qkv = random_tensor({rows, 3 * H * D}, 14);
  const Tensor datt = random_tensor({rows, H * D}, 15), logits = random_tensor({rows, V}, 16);
  const Tensor dsw = random_tensor({rows, C}, 20);
  Tensor targets = Tensor::empty({rows}, DType::I32);
  for (int64_t i = 0; i < rows; ++i) targets.i32()[i] = static_cast<int32_t>((i * 7) % V);
  auto empty = [](const Shape& s, Device d) { return Tensor::empty(s, DType::F32, d); };
  auto zeros = [](const Shape& s, Device d) { return Tensor::zeros(s, DType::F32, d); };
  check_op("layernorm", [&](Backend& be, Device d) {
    Tensor out = empty({rows, C}, d), mean = empty({rows}, d), rstd = empty({rows}, d);
    be.layernorm_forward(out, mean, rstd, on(x, d), on(w, d), on(bvec, d));
    Tensor dx = empty({rows, C}, d), dw = zeros({C}, d), db = zeros({C}, d);
    be.layernorm_backward(dx, dw, db, on(dout, d), on(x, d), on(w, d), mean, rstd);
    return std::vector<Tensor>{out, dx, dw, db};
  });
  check_op("rmsnorm", [&](Backend& be, Device d) {
    Tensor out = empty({rows, C}, d), rstd = empty({rows}, d), dx = empty({rows, C}, d), dw = zeros({C}, d);
    be.rmsnorm_forward(out, rstd, on(x, d), on(w, d), 1e-6f);
    be.rmsnorm_backward(dx, dw, on(dout, d), on(x, d), on(w, d), rstd);
    return std::vector<Tensor>{out, dx, dw};
  });
  check_op("attention (saved state is the backend's own)", [&](Backend& be, Device d) {
    Tensor out = empty({rows, H * D}, d), dqkv = empty({rows, 3 * H * D}, d);
    const Tensor q = on(qkv, d);
    const Tensor saved = be.attention_forward(out, q, B, T, H, D);
    be.attention_backward(dqkv, on(datt, d), q, saved, B, T, H, D);
    return std::vector<Tensor>{out, dqkv};
  });
  check_op("rope, swiglu, gqa", [&](Backend& be, Device d) {
    Tensor cos = empty({T, D / 2}, d), sin = empty({T, D / 2}, d);
    be.rope_tables(cos, sin, T, D, 10000.f);
    Tensor r = on(datt, d);
    be.rope_forward(r, cos, sin, T, H);
    Tensor rb = on(datt, d);
    be.rope_backward(rb, cos, sin, T, H);
    Tensor s = empty({rows, C}, d), dg = empty({rows, C}, d), du = empty({rows, C}, d);
    be.swiglu_forward(s, on(x, d), on(dout, d));
    be.swiglu_backward(dg, du, on(x, d), on(dout, d), on(dsw, d));
    const Tensor kv = random_tensor({rows, D}, 19);
    Tensor packed = empty({rows, 3 * H * D}, d), dq = empty({rows, H * D}, d), dk = empty({rows, D}, d);
    Tensor dv = empty({rows, D}, d);
    be.gqa_pack_forward(packed, on(datt, d), on(kv, d), on(kv, d), H, 1);
    be.gqa_pack_backward(dq, dk, dv, on(qkv, d), H, 1);
    return std::vector<Tensor>{cos, sin, r, rb, s, dg, du, packed, dq, dk, dv};
  });
  check_op("gelu, relu, bias, residual", [&](Backend& be, Device d) {
    Tensor g = empty({rows, C}, d), dg = empty({rows, C}, d), r = empty({rows, C}, d), dr = empty({rows, C}, d);
    Tensor sum = empty({rows, C}, d), db = zeros({C}, d);
    be.gelu_forward(g, on(x, d));
    be.gelu_backward(dg, on(x, d), on(dout, d));
    be.relu_forward(r, on(x, d));
    be.relu_backward(dr, on(x, d), on(dout, d));
    be.residual_forward(sum, on(x, d), on(dout, d));
    be.accumulate(sum, g);
    be.bias_forward(sum, on(bvec, d));
    be.bias_backward(db, on(dout, d));
    return std::vector<Tensor>{g, dg, r, dr, sum, db};
  });
  check_op("cross entropy", [&](Backend& be, Device d) {
    Tensor row_max = empty({rows}, d), sum_exp = empty({rows}, d), tl = empty({rows}, d);
    const Tensor l = on(logits, d), t = on(targets, d);
    be.cross_entropy_row_max(row_max, l, V - 1);
    be.cross_entropy_partial_sums(sum_exp, tl, l, row_max, t, V - 1, 0);
    Tensor loss = empty({rows}, d), dlogits = empty({rows, V}, d);
    be.cross_entropy_loss(loss, row_max, sum_exp, tl);
    be.cross_entropy_backward(dlogits, l, row_max, sum_exp, t, on(Tensor::full({rows}, 0.5f), d), V - 1, 0);
    return std::vector<Tensor>{loss, dlogits};
  });
  check_op("embedding (a vocabulary shard)", [&](Backend& be, Device d) {
    const Tensor wte = random_tensor({V / 2, C}, 17), wpe = random_tensor({T, C}, 18);
    Tensor out = empty({rows, C}, d), dwte = zeros({V / 2, C}, d), dwpe = zeros({T, C}, d);
    const Tensor t = on(targets, d);
    be.token_embedding_forward(out, t, on(wte, d), 3);
    be.position_embedding_forward(out, on(wpe, d), B, T);
    be.token_embedding_backward(dwte, on(dout, d), t, 3);
    be.position_embedding_backward(dwpe, on(dout, d), B, T);
    return std::vector<Tensor>{out, dwte, dwpe};
  });
}

TEST_CASE("cuda backend: the optimizer's ops (sums of squares, scale, AdamW) match the CPU", "[cuda_backend]") {
  const Tensor g1 = random_tensor({1000}, 41), g2 = random_tensor({7, 13}, 42, 3.f);
  const Tensor w0 = random_tensor({7, 13}, 43), m0 = random_tensor({7, 13}, 44, 0.1f);
  Tensor v0 = random_tensor({7, 13}, 45, 0.1f);
  for (int64_t i = 0; i < v0.numel(); ++i) v0.f32()[i] *= v0.f32()[i];  // second moments are >= 0
  CpuBackend cpu(CpuGemm::Eigen);
  CudaBackend cuda(context());
  const Tensor d1 = to_device(g1, cuda.device()), d2 = to_device(g2, cuda.device());
  const std::vector<double> want = cpu.sum_squares({&g1, &g2}), got = cuda.sum_squares({&d1, &d2});
  REQUIRE(got.size() == 2);
  for (size_t i = 0; i < 2; ++i) CHECK(std::abs(got[i] - want[i]) <= 1e-12 * want[i]);
  CHECK(cuda.sum_squares({}).empty());
  // The total stays on the device: the per-tensor double sums added in order, rounded once to fp32.
  Tensor total = Tensor::empty({1}, DType::F32, cuda.device());
  cuda.sum_squares_total({&d1, &d2}, total);
  CHECK(to_device(total, Device::cpu()).f32()[0] == static_cast<float>(want[0] + want[1]));
  cuda.sum_squares_total({}, total);
  CHECK(to_device(total, Device::cpu()).f32()[0] == 0.f);
  check_op("scale", [&](Backend& be, Device d) {
    Tensor x = on(g2, d);
    be.scale(x, 0.37f);
    return std::vector<Tensor>{x};
  });
  check_op("adamw_update", [&](Backend& be, Device d) {
    Tensor w = on(w0, d), m = on(m0, d), v = on(v0, d);
    be.adamw_update(w, on(g2, d), m, v, AdamWStep{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3});
    return std::vector<Tensor>{w, m, v};
  });
}

TEST_CASE("cuda backend: a host tensor given to a device op is refused, naming both devices", "[cuda_backend]") {
  CudaBackend cuda(context());
  Tensor host = Tensor::zeros({4});
  Tensor dev = Tensor::empty({4}, DType::F32, cuda.device());
  CHECK_THROWS_WITH(cuda.gelu_forward(dev, host), Catch::Contains("on cpu given to an op on cuda:0"));
  CHECK_THROWS_WITH(host.copy_from(dev), Catch::Contains("host-only"));
  CHECK_THROWS_WITH(dev.f32(), Catch::Contains("host access to a tensor on cuda:0"));
  CHECK_THROWS_WITH(cuda.cast(dev, host), Catch::Contains("cpu"));
}

}  // namespace tessera
