// [cuda] tests of the Llama block's kernels (RMSNorm, rotary embedding, SwiGLU, grouped
// key/value packing) against their CPU twins.
#include <cmath>

#include "kernels/cuda/gqa_cuda.h"
#include "kernels/cuda/rmsnorm_cuda.h"
#include "kernels/cuda/rope_cuda.h"
#include "kernels/cuda/swiglu_cuda.h"
#include "kernels/gqa.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "tests/cuda/cuda_test_util.h"

namespace cpu = tessera::kernels::cpu;
namespace gpu = tessera::kernels::cuda;
using namespace tessera::cuda_testing;

TEST_CASE("cuda rmsnorm forward and backward match the cpu kernels", "[cuda][rmsnorm]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  // Widths below one warp, odd, and Llama-sized; row counts not a multiple of 8 rows per block.
  // Not one column: there dinp = rstd g (1 - n^2) with n^2 = 1 - eps rstd^2, all cancellation,
  // which both kernels compute only to their rounding of n.
  const std::pair<int64_t, int64_t> shapes[] = {{1, 3}, {3, 5}, {37, 33}, {1031, 1024}};
  for (const auto& [rows, cols] : shapes) {
    CAPTURE(rows, cols);
    const size_t n = rows * cols;
    const auto x = random_floats(n, 60, -2.0f, 2.0f), w = random_floats(cols, 61, 0.5f, 1.5f);
    const auto dy = random_floats(n, 62), dw0 = random_floats(cols, 63);
    std::vector<float> y(n), rstd(rows), dx(n), dw = dw0;
    cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), rows, cols, 1e-5f);
    cpu::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), rows, cols);
    const DeviceArray<float> x_d(x), w_d(w);
    DeviceArray<float> dy_d(dy), dw_d(dw0);
    auto y_d = DeviceArray<float>::poisoned(n), rstd_d = DeviceArray<float>::poisoned(rows);
    gpu::rmsnorm_forward(y_d.get(), rstd_d.get(), x_d.get(), w_d.get(), rows, cols, 1e-5f, stream.get());
    // In place: dinp overwrites dout, which the weight gradient reads first.
    gpu::rmsnorm_backward(dy_d.get(), dw_d.get(), dy_d.get(), x_d.get(), w_d.get(), rstd_d.get(), rows, cols,
                          stream.get());
    stream.sync();
    check_normalised("rmsnorm out", y_d.to_host(), y, 1e-5);
    check_normalised("rmsnorm rstd", rstd_d.to_host(), rstd, 1e-5);
    check_normalised("rmsnorm dinp (in place)", dy_d.to_host(), dx, 1e-5);
    check_normalised("rmsnorm dweight (accumulated)", dw_d.to_host(), dw, 1e-5);
  }
}

TEST_CASE("cuda rope forward and backward match the cpu kernels", "[cuda][rope]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  for (auto [B, T, H, D] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 2}, {3, 17, 4, 8}, {2, 300, 8, 64}}) {
    CAPTURE(B, T, H, D);
    const size_t n = B * T * H * D;
    std::vector<float> cos_t(T * D / 2), sin_t(T * D / 2);
    cpu::rope_tables(cos_t.data(), sin_t.data(), T, D, 500000.f);
    const auto x = random_floats(n, 64), dy = random_floats(n, 65);
    std::vector<float> y(n), dx(n);
    cpu::rope_forward(y.data(), x.data(), cos_t.data(), sin_t.data(), B * T, T, H, D);
    cpu::rope_backward(dx.data(), dy.data(), cos_t.data(), sin_t.data(), B * T, T, H, D);
    const DeviceArray<float> cos_d(cos_t), sin_d(sin_t), x_d(x);
    DeviceArray<float> dy_d(dy);
    auto y_d = DeviceArray<float>::poisoned(n);
    gpu::rope_forward(y_d.get(), x_d.get(), cos_d.get(), sin_d.get(), B * T, T, H, D, stream.get());
    gpu::rope_backward(dy_d.get(), dy_d.get(), cos_d.get(), sin_d.get(), B * T, T, H, D, stream.get());
    stream.sync();
    // Two products and a sum per value: a few ulp (FMA contraction on the device).
    check_normalised("rope forward", y_d.to_host(), y, 1e-6);
    check_normalised("rope backward (in place)", dy_d.to_host(), dx, 1e-6);
  }
}

TEST_CASE("cuda swiglu matches the cpu kernel", "[cuda][swiglu]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  for (size_t n : {size_t{1}, size_t{1000}, (size_t{1} << 20) + 7}) {
    CAPTURE(n);
    const auto g = random_floats(n, 66, -6, 6), u = random_floats(n, 67), dy = random_floats(n, 68);
    std::vector<float> y(n), dg(n), du(n);
    cpu::swiglu_forward(y.data(), g.data(), u.data(), n);
    cpu::swiglu_backward(dg.data(), du.data(), g.data(), u.data(), dy.data(), n);
    const DeviceArray<float> g_d(g), u_d(u), dy_d(dy);
    auto y_d = DeviceArray<float>::poisoned(n), dg_d = DeviceArray<float>::poisoned(n),
         du_d = DeviceArray<float>::poisoned(n);
    gpu::swiglu_forward(y_d.get(), g_d.get(), u_d.get(), n, stream.get());
    gpu::swiglu_backward(dg_d.get(), du_d.get(), g_d.get(), u_d.get(), dy_d.get(), n, stream.get());
    stream.sync();
    // expf against Eigen's vectorised exp: a few ulp each.
    check_normalised("swiglu forward", y_d.to_host(), y, 1e-5);
    check_normalised("swiglu dgate", dg_d.to_host(), dg, 1e-5);
    check_normalised("swiglu dup", du_d.to_host(), du, 1e-5);
  }
}

TEST_CASE("cuda gqa packing matches the cpu kernels exactly", "[cuda][gqa]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  for (auto [H, G] : {std::pair<int64_t, int64_t>{4, 4}, {8, 2}, {6, 1}}) {
    CAPTURE(H, G);
    const int64_t rows = 37, D = 16, A = H * D, Kw = G * D;
    const auto q = random_floats(rows * A, 69), k = random_floats(rows * Kw, 70), v = random_floats(rows * Kw, 71);
    const auto dqkv = random_floats(rows * 3 * A, 72);
    std::vector<float> qkv(rows * 3 * A), dq(rows * A), dk(rows * Kw), dv(rows * Kw);
    cpu::gqa_pack_forward(qkv.data(), q.data(), k.data(), v.data(), rows, H, G, D);
    cpu::gqa_pack_backward(dq.data(), dk.data(), dv.data(), dqkv.data(), rows, H, G, D);
    const DeviceArray<float> q_d(q), k_d(k), v_d(v), dqkv_d(dqkv);
    auto qkv_d = DeviceArray<float>::poisoned(rows * 3 * A), dq_d = DeviceArray<float>::poisoned(rows * A),
         dk_d = DeviceArray<float>::poisoned(rows * Kw), dv_d = DeviceArray<float>::poisoned(rows * Kw);
    gpu::gqa_pack_forward(qkv_d.get(), q_d.get(), k_d.get(), v_d.get(), rows, H, G, D, stream.get());
    gpu::gqa_pack_backward(dq_d.get(), dk_d.get(), dv_d.get(), dqkv_d.get(), rows, H, G, D, stream.get());
    stream.sync();
    // Copies, and sums over the same heads in the same order: bit-identical.
    check_normalised("gqa pack", qkv_d.to_host(), qkv, 0.0);
    check_normalised("gqa dq", dq_d.to_host(), dq, 0.0);
    check_normalised("gqa dk", dk_d.to_host(), dk, 0.0);
    check_normalised("gqa dv", dv_d.to_host(), dv, 0.0);
  }
}
