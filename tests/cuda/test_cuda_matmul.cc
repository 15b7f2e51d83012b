// [cuda] tests of the cuBLASLt GEMM and Linear launchers against the CPU kernels, in fp32 and
// in bf16-input / fp32-accumulate form.
//
// Tolerances. fp32: both sides are fp32 multiply-add chains over K <= 769 terms of size <= 1,
// summed in different orders; the rounding difference is ~sqrt(K) ulp of the partial sums, about
// 1e-6 of the largest output. 1e-5 leaves a margin and still fails TF32 (10-bit mantissa inputs,
// errors ~1e-3), so it also proves TF32 is off by default. bf16: the CPU reference multiplies the
// same bf16-rounded values in fp32; bf16 x bf16 products are exact in fp32, so only the summation
// order differs, as in fp32 (1e-5 again). Against the unrounded fp32 inputs the bf16 result must
// be within 1e-2 (M6's criterion; rounding the inputs to 8 bits gives ~4e-3).
#include <algorithm>
#include <tuple>

#include "kernels/cuda/cublas_handle.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/matmul.h"
#include "tests/cuda/cuda_test_util.h"

namespace cpu = tessera::kernels::cpu;
namespace gpu = tessera::kernels::cuda;
using namespace tessera::cuda_testing;

namespace {

constexpr double kFp32Tol = 1e-5;

struct Shape {
  int64_t M, N, K;
};

// Rounds a host vector through bf16 and back: the values a bf16 kernel sees.
std::vector<float> bf16_rounded(const std::vector<float>& v) { return from_bf16(to_bf16(v)); }

}  // namespace

TEST_CASE("cuda gemm matches the cpu gemm for every transpose", "[cuda][matmul]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  gpu::CublasHandle handle;
  const Shape shapes[] = {{1, 1, 1}, {17, 33, 65}, {128, 96, 257}, {300, 7, 1}, {5, 301, 769}};
  for (const Shape& s : shapes) {
    for (int t = 0; t < 4; ++t) {
      // Padded leading dimensions and an output that is read (beta != 0), or exact ones and a
      // NaN-poisoned output that must not be read (beta == 0).
      for (const bool padded : {false, true}) {
        const bool ta = t & 1, tb = t & 2;
        const int64_t pad = padded ? 3 : 0;
        const int64_t lda = (ta ? s.M : s.K) + pad, ldb = (tb ? s.K : s.N) + pad, ldc = s.N + pad;
        const int64_t a_rows = ta ? s.K : s.M, b_rows = tb ? s.N : s.K;
        CAPTURE(s.M, s.N, s.K, ta, tb, padded);
        const float alpha = 0.75f, beta = padded ? 0.5f : 0.0f;
        const auto A = random_floats(a_rows * lda, 20), B = random_floats(b_rows * ldb, 21);
        std::vector<float> C = random_floats(s.M * ldc, 22);
        const DeviceArray<float> A_d(A), B_d(B);
        auto C_d = padded ? DeviceArray<float>(C) : DeviceArray<float>::poisoned(C.size());
        cpu::gemm(ta, tb, s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        gpu::gemm(handle, ta, tb, s.M, s.N, s.K, alpha, A_d.get(), lda, B_d.get(), ldb, beta,
                  C_d.get(), ldc, stream.get());
        stream.sync();
        check_normalised("gemm", C_d.to_host(), C, kFp32Tol);
      }
    }
  }
  // Informational: shapes cuBLASLt had no algorithm for (they ran through cublasGemmEx).
  if (handle.fallback_gemms() > 0) WARN(handle.fallback_gemms() << " GEMMs used cublasGemmEx");
}

// Views into a buffer (a head, a shard) are often only 4-byte aligned; cuBLASLt must be told.
TEST_CASE("cuda gemm handles operands that are not 16-byte aligned", "[cuda][matmul]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  gpu::CublasHandle handle;
  const int64_t M = 64, N = 48, K = 80;
  const auto A = random_floats(M * K + 1, 23), B = random_floats(K * N + 1, 24);
  std::vector<float> C(M * N + 1, 0.0f);
  const DeviceArray<float> A_d(A), B_d(B);
  DeviceArray<float> C_d(C);
  cpu::gemm(false, false, M, N, K, 1.0f, A.data() + 1, K, B.data() + 1, N, 0.0f, C.data() + 1, N);
  gpu::gemm(handle, false, false, M, N, K, 1.0f, A_d.get() + 1, K, B_d.get() + 1, N, 0.0f,
            C_d.get() + 1, N, stream.get());
  stream.sync();
  check_normalised("gemm at offset 1", C_d.to_host(), C, kFp32Tol);
}

TEST_CASE("cuda gemm with K = 0 scales C by beta", "[cuda][matmul]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  gpu::CublasHandle handle;
  const auto C0 = random_floats(6 * 5, 25);
  for (const float beta : {0.0f, 0.5f}) {
    std::vector<float> C = C0;
    DeviceArray<float> C_d(C0);
    cpu::gemm(false, false, 6, 5, 0, 1.0f, nullptr, 1, nullptr, 5, beta, C.data(), 5);
    gpu::gemm(handle, false, false, 6, 5, 0, 1.0f, nullptr, 1, nullptr, 5, beta, C_d.get(), 5,
              stream.get());
    stream.sync();
    check_normalised("gemm K=0", C_d.to_host(), C, 0.0);
  }
}

TEST_CASE("cuda linear forward and backward match the cpu kernels", "[cuda][matmul]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  gpu::CublasHandle handle;
  const std::tuple<int64_t, int64_t, int64_t> shapes[] = {
      {1, 1, 1}, {37, 65, 129}, {256, 768, 96}, {33, 0, 7}};
  for (const auto& [rows, in, out] : shapes) {
    for (const bool with_bias : {false, true}) {
      for (const bool fused : {true, false}) {
        CAPTURE(rows, in, out, with_bias, fused);
        handle.set_fuse_epilogues(fused);
        const auto x = random_floats(rows * in, 30), w = random_floats(out * in, 31);
        const auto b = random_floats(out, 32), dy = random_floats(rows * out, 33);
        const auto dw0 = random_floats(out * in, 34), db0 = random_floats(out, 35);
        std::vector<float> y(rows * out), dx(rows * in), dw = dw0, db = db0;
        cpu::linear_forward(y.data(), x.data(), w.data(), with_bias ? b.data() : nullptr, rows,
                            in, out);
        cpu::linear_backward(dx.data(), dw.data(), with_bias ? db.data() : nullptr, dy.data(),
                             x.data(), w.data(), rows, in, out);

        const DeviceArray<float> x_d(x), w_d(w), b_d(b), dy_d(dy);
        auto y_d = DeviceArray<float>::poisoned(y.size()),
             dx_d = DeviceArray<float>::poisoned(dx.size());
        DeviceArray<float> dw_d(dw0), db_d(db0);
        gpu::linear_forward(handle, y_d.get(), x_d.get(), w_d.get(), with_bias ? b_d.get() : nullptr,
                            rows, in, out, stream.get());
        gpu::linear_backward(handle, dx_d.get(), dw_d.get(), with_bias ? db_d.get() : nullptr,
                             dy_d.get(), x_d.get(), w_d.get(), rows, in, out, stream.get());
        stream.sync();
        check_normalised("linear forward", y_d.to_host(), y, kFp32Tol);
        check_normalised("linear dinp", dx_d.to_host(), dx, kFp32Tol);
        check_normalised("linear dweight (accumulated)", dw_d.to_host(), dw, kFp32Tol);
        check_normalised("linear dbias (accumulated)", db_d.to_host(), db, kFp32Tol);
      }
    }
  }
}

TEST_CASE("cuda linear backward without dinp leaves it alone", "[cuda][matmul]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  gpu::CublasHandle handle;
  const int64_t rows = 9, in = 10, out = 11;
  const auto x = random_floats(rows * in, 36), w = random_floats(out * in, 37),
             dy = random_floats(rows * out, 38);
  std::vector<float> dw(out * in, 0.0f);
  cpu::linear_backward(nullptr, dw.data(), nullptr, dy.data(), x.data(), w.data(), rows, in, out);
  const DeviceArray<float> x_d(x), w_d(w), dy_d(dy);
  DeviceArray<float> dw_d(std::vector<float>(out * in, 0.0f));
  gpu::linear_backward(handle, nullptr, dw_d.get(), nullptr, dy_d.get(), x_d.get(), w_d.get(), rows,
                       in, out, stream.get());
  stream.sync();
  check_normalised("linear dweight", dw_d.to_host(), dw, kFp32Tol);
}

TEST_CASE("cuda fp32 gemm with TF32 allowed stays within TF32 accuracy", "[cuda][matmul]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  gpu::CublasHandle handle;
  handle.set_allow_tf32(true);
  const int64_t M = 256, N = 256, K = 512;
  const auto A = random_floats(M * K, 39), B = random_floats(K * N, 40);
  std::vector<float> C(M * N);
  cpu::gemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
  const DeviceArray<float> A_d(A), B_d(B);
  auto C_d = DeviceArray<float>::poisoned(C.size());
  gpu::gemm(handle, false, false, M, N, K, 1.0f, A_d.get(), K, B_d.get(), N, 0.0f, C_d.get(), N,
            stream.get());
  stream.sync();
  // TF32 keeps 10 mantissa bits of each input: relative input error 2^-11, accumulated over
  // random-sign products to ~1e-3 of the largest output.
  check_normalised("gemm tf32", C_d.to_host(), C, 1e-2);
}

TEST_CASE("cuda bf16 linear matches the cpu kernels on bf16-rounded inputs", "[cuda][matmul]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  gpu::CublasHandle handle;
  const std::tuple<int64_t, int64_t, int64_t> shapes[] = {{1, 1, 1}, {37, 65, 129}, {256, 768, 96}};
  for (const auto& [rows, in, out] : shapes) {
    for (const bool fused : {true, false}) {
      CAPTURE(rows, in, out, fused);
      handle.set_fuse_epilogues(fused);
      const auto x = random_floats(rows * in, 41), w = random_floats(out * in, 42);
      const auto b = random_floats(out, 43), dy = random_floats(rows * out, 44);
      const auto xr = bf16_rounded(x), wr = bf16_rounded(w), dyr = bf16_rounded(dy);
      std::vector<float> y(rows * out), dx(rows * in), dw(out * in, 0.0f), db(out, 0.0f);
      cpu::linear_forward(y.data(), xr.data(), wr.data(), b.data(), rows, in, out);
      cpu::linear_backward(dx.data(), dw.data(), db.data(), dyr.data(), xr.data(), wr.data(), rows,
                           in, out);
      std::vector<float> y_exact(rows * out);
      cpu::linear_forward(y_exact.data(), x.data(), w.data(), b.data(), rows, in, out);

      const DeviceArray<uint16_t> x_d(to_bf16(x)), w_d(to_bf16(w)), dy_d(to_bf16(dy));
      const DeviceArray<float> b_d(b);
      auto y_d = DeviceArray<float>::poisoned(y.size()),
           dx_d = DeviceArray<float>::poisoned(dx.size());
      DeviceArray<float> dw_d(std::vector<float>(out * in, 0.0f)), db_d(std::vector<float>(out, 0.0f));
      gpu::linear_forward_bf16(handle, y_d.get(), x_d.get(), w_d.get(), b_d.get(), rows, in, out,
                               stream.get());
      gpu::linear_backward_bf16(handle, dx_d.get(), dw_d.get(), db_d.get(), dy_d.get(), x_d.get(),
                                w_d.get(), rows, in, out, stream.get());
      stream.sync();
      const auto y_got = y_d.to_host();
      check_normalised("bf16 linear forward", y_got, y, kFp32Tol);
      check_normalised("bf16 linear forward vs fp32 inputs", y_got, y_exact, 1e-2);
      check_normalised("bf16 linear dinp", dx_d.to_host(), dx, kFp32Tol);
      check_normalised("bf16 linear dweight", dw_d.to_host(), dw, kFp32Tol);
      check_normalised("bf16 linear dbias", db_d.to_host(), db, kFp32Tol);
    }
  }
}

TEST_CASE("cuda bf16 gemm matches the cpu gemm for every transpose", "[cuda][matmul]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  gpu::CublasHandle handle;
  const Shape shapes[] = {{1, 1, 1}, {17, 33, 65}, {128, 96, 257}};
  for (const Shape& s : shapes) {
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      CAPTURE(s.M, s.N, s.K, ta, tb);
      const auto A = random_floats(s.M * s.K, 45), B = random_floats(s.K * s.N, 46);
      const auto Ar = bf16_rounded(A), Br = bf16_rounded(B);
      const int64_t lda = ta ? s.M : s.K, ldb = tb ? s.K : s.N;
      std::vector<float> C = random_floats(s.M * s.N, 47);
      DeviceArray<float> C_d(C);
      cpu::gemm(ta, tb, s.M, s.N, s.K, 1.0f, Ar.data(), lda, Br.data(), ldb, 1.0f, C.data(), s.N);
      const DeviceArray<uint16_t> A_d(to_bf16(A)), B_d(to_bf16(B));
      gpu::gemm_bf16(handle, ta, tb, s.M, s.N, s.K, 1.0f, A_d.get(), lda, B_d.get(), ldb, 1.0f,
                     C_d.get(), s.N, stream.get());
      stream.sync();
      check_normalised("bf16 gemm", C_d.to_host(), C, kFp32Tol);
    }
  }
}

TEST_CASE("cuda linear forward fuses the bias only when every pointer is 16-byte aligned",
          "[cuda][matmul]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  gpu::CublasHandle handle;
  const int64_t rows = 64, in = 128, out = 96;
  const auto x = random_floats(rows * in, 48), w = random_floats(out * in, 49);
  const auto b = random_floats(out, 50);
  std::vector<float> y(rows * out);
  cpu::linear_forward(y.data(), x.data(), w.data(), b.data(), rows, in, out);
  // The bias one float into its buffer (4-byte aligned), as a parameter at an odd offset of a
  // flat buffer would be; the other operands stay aligned.
  std::vector<float> b_shifted(out + 1, 0.0f);
  std::copy(b.begin(), b.end(), b_shifted.begin() + 1);
  const DeviceArray<float> x_d(x), w_d(w), b_d(b), b_shifted_d(b_shifted);
  for (const bool aligned : {false, true}) {
    CAPTURE(aligned);
    auto y_d = DeviceArray<float>::poisoned(y.size());
    const float* bias = aligned ? b_d.get() : b_shifted_d.get() + 1;
    const int64_t fused_before = handle.fused_bias_gemms();
    gpu::linear_forward(handle, y_d.get(), x_d.get(), w_d.get(), bias, rows, in, out,
                        stream.get());
    stream.sync();
    check_normalised("linear forward", y_d.to_host(), y, kFp32Tol);
    // cuBLASLt has a bias epilogue for this fp32 problem, so the aligned call fuses.
    CHECK(handle.fused_bias_gemms() - fused_before == (aligned ? 1 : 0));
  }
}

TEST_CASE("cuda gemm plans are built once per problem and reused", "[cuda][matmul]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  gpu::CublasHandle handle;
  const int64_t M = 32, N = 48, K = 64, capacity = static_cast<int64_t>(gpu::kGemmPlanCapacity);
  // Rows enough for the M + capacity problems below; C is checked for the first M.
  const auto A = random_floats((M + capacity) * K, 51), B = random_floats(K * N, 52);
  std::vector<float> C(M * N);
  cpu::gemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
  const DeviceArray<float> A_d(A), B_d(B);
  auto run = [&](int64_t m) {
    auto C_d = DeviceArray<float>::poisoned(m * N);
    gpu::gemm(handle, false, false, m, N, K, 1.0f, A_d.get(), K, B_d.get(), N, 0.0f, C_d.get(), N,
              stream.get());
    stream.sync();
    return C_d.to_host();
  };
  REQUIRE(handle.plans_built() == 0);
  for (int call = 0; call < 3; ++call) {
    // The cached plan gives the same (correct) result on every call.
    check_normalised("gemm through a cached plan", run(M), C, kFp32Tol);
  }
  CHECK(handle.plans_built() == 1);
  CHECK(handle.plan_hits() == 2);
  // Another shape, and the same shape with TF32 (another compute type), are new problems.
  run(M - 1);
  CHECK(handle.plans_built() == 2);
  handle.set_allow_tf32(true);
  run(M);
  CHECK(handle.plans_built() == 3);
  handle.set_allow_tf32(false);
  // The cache keeps the most recently used kCapacity plans: after that many other problems,
  // the first is rebuilt.
  for (int64_t m = M + 1; m <= M + capacity; ++m) run(m);
  const int64_t built = handle.plans_built();
  run(M);
  CHECK(handle.plans_built() == built + 1);
}
