// [cuda] tests of the flash-style causal attention against the CPU kernel (which materialises
// the T x T probabilities), and of its saved log-sum-exp against a double-precision reference.
//
// Tolerances. Forward: the online softmax rescales partial sums tile by tile instead of
// normalising once, and sums in another order; outputs are convex combinations of V, so they
// agree to a few ulp of max|V| (1e-5 normalised). Backward: the CPU forms
// dS = P (dP - rowsum(P dP)), the GPU P (dP - rowsum(dO O)); the two row sums are equal in exact
// arithmetic only, and dP - delta cancels when they are close, so the gradients agree to
// ~sqrt(T D) ulp of the largest |dP| rather than of the result: 1e-4 normalised.
#include <cmath>
#include <tuple>

#include "kernels/attention.h"
#include "kernels/cuda/attention_cuda.h"
#include "tests/cuda/cuda_test_util.h"

namespace cpu = tessera::kernels::cpu;
namespace gpu = tessera::kernels::cuda;
using namespace tessera::cuda_testing;

namespace {

// lse[b, h, t] = log sum_{s <= t} exp(q_t . k_s / sqrt(D)), in double.
std::vector<float> reference_lse(const std::vector<float>& qkv, int64_t B, int64_t T, int64_t H,
                                 int64_t D) {
  std::vector<float> lse(B * H * T);
  const int64_t ld = 3 * H * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        double m = -INFINITY;
        for (int64_t u = 0; u <= t; ++u) {
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d) {
            dot += double{qkv[(b * T + t) * ld + h * D + d]} *
                   qkv[(b * T + u) * ld + H * D + h * D + d];
          }
          s[u] = dot * scale;
          m = std::max(m, s[u]);
        }
        double sum = 0.0;
        for (double x : s) sum += std::exp(x - m);
        lse[(b * H + h) * T + t] = static_cast<float>(m + std::log(sum));
      }
    }
  }
  return lse;
}

}  // namespace

TEST_CASE("cuda flash attention matches the cpu kernel", "[cuda][attention]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  // (B, T, H, D): single token; T and D odd and off the 32-tile; several full tiles with
  // GPT-2's head size; a large head (dynamic shared memory above 48 KiB); the largest head.
  const std::tuple<int64_t, int64_t, int64_t, int64_t> shapes[] = {
      {1, 1, 1, 1}, {2, 37, 3, 5}, {2, 100, 2, 64}, {1, 65, 2, 128}, {1, 33, 1, 256}};
  for (const auto& [B, T, H, D] : shapes) {
    CAPTURE(B, T, H, D);
    const size_t n_qkv = B * T * 3 * H * D, n_out = B * T * H * D;
    // Scores of a few units, so the softmax is neither flat nor one-hot.
    const auto qkv = random_floats(n_qkv, 60, -2.0f, 2.0f);
    const auto dout = random_floats(n_out, 61);
    std::vector<float> out(n_out), probs(B * H * T * T), dqkv(n_qkv);
    cpu::attention_forward(out.data(), probs.data(), qkv.data(), B, T, H, D);
    cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), probs.data(), B, T, H, D);

    const DeviceArray<float> qkv_d(qkv), dout_d(dout);
    auto out_d = DeviceArray<float>::poisoned(n_out), lse_d = DeviceArray<float>::poisoned(B * H * T),
         dqkv_d = DeviceArray<float>::poisoned(n_qkv);
    gpu::attention_forward(out_d.get(), lse_d.get(), qkv_d.get(), B, T, H, D, stream.get());
    gpu::attention_backward(dqkv_d.get(), dout_d.get(), qkv_d.get(), out_d.get(), lse_d.get(), B, T,
                            H, D, stream.get());
    stream.sync();
    check_normalised("attention out", out_d.to_host(), out, 1e-5);
    // m + log(l) in float against double: a few ulp of the largest |lse|.
    check_normalised("attention lse", lse_d.to_host(), reference_lse(qkv, B, T, H, D), 1e-5);
    check_normalised("attention dqkv", dqkv_d.to_host(), dqkv, 1e-4);
  }
}

// The point of the flash kernel: T = 8192 needs 256 MiB per (b, h) for probs on the CPU path,
// here only the [B, H, T] lse. Checked against the double reference on a sample of rows.
TEST_CASE("cuda flash attention runs long sequences without T x T memory",
          "[cuda][attention][long]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  const int64_t B = 1, T = 8192, H = 2, D = 64;
  const auto qkv = random_floats(B * T * 3 * H * D, 62, -2.0f, 2.0f);
  const auto dout = random_floats(B * T * H * D, 63);
  const DeviceArray<float> qkv_d(qkv), dout_d(dout);
  auto out_d = DeviceArray<float>::poisoned(B * T * H * D),
       lse_d = DeviceArray<float>::poisoned(B * H * T),
       dqkv_d = DeviceArray<float>::poisoned(qkv.size());
  size_t free_before = 0, total = 0;
  TESSERA_CUDA_CHECK(cudaMemGetInfo(&free_before, &total));
  gpu::attention_forward(out_d.get(), lse_d.get(), qkv_d.get(), B, T, H, D, stream.get());
  gpu::attention_backward(dqkv_d.get(), dout_d.get(), qkv_d.get(), out_d.get(), lse_d.get(), B, T,
                          H, D, stream.get());
  stream.sync();
  size_t free_after = 0;
  TESSERA_CUDA_CHECK(cudaMemGetInfo(&free_after, &total));
  CHECK(free_before - std::min(free_before, free_after) < (size_t{64} << 20));

  // The first 64 rows' lse in double (O(64 T D) work), and every output finite.
  const auto lse = lse_d.to_host();
  const auto lse_ref = reference_lse(
      std::vector<float>(qkv.begin(), qkv.begin() + 64 * 3 * H * D), B, 64, H, D);
  std::vector<float> lse_head0(lse.begin(), lse.begin() + 64), ref_head0(lse_ref.begin(),
                                                                         lse_ref.begin() + 64);
  check_normalised("long attention lse", lse_head0, ref_head0, 1e-5);
  size_t bad = 0;
  for (float x : out_d.to_host()) bad += !std::isfinite(x);
  for (float x : dqkv_d.to_host()) bad += !std::isfinite(x);
  CHECK(bad == 0);
}
