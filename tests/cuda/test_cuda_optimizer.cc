// [cuda] tests of the fused AdamW, the sum of squares and the clip scaling against the CPU
// twins.
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/adamw.h"
#include "kernels/cuda/adamw_cuda.h"
#include "kernels/cuda/grad_clip_cuda.h"
#include "kernels/cuda/residual_cuda.h"
#include "kernels/grad_clip.h"
#include "kernels/residual.h"
#include "tests/cuda/cuda_test_util.h"

namespace cpu = tessera::kernels::cpu;
namespace gpu = tessera::kernels::cuda;
using namespace tessera::cuda_testing;

TEST_CASE("cuda adamw matches the cpu kernel over several steps", "[cuda][adamw]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  for (size_t n : {size_t{1}, size_t{1000}, (size_t{1} << 20) + 7}) {
    // beta1 = 0.9 takes torch.lerp's first form, 0.3 the second.
    for (const float beta1 : {0.9f, 0.3f}) {
      CAPTURE(n, beta1);
      std::vector<float> p = random_floats(n, 90), m(n, 0.0f), v(n, 0.0f);
      DeviceArray<float> p_d(p), m_d(m), v_d(v);
      auto p16_d = DeviceArray<uint16_t>::poisoned(n);
      for (int64_t step = 1; step <= 3; ++step) {
        const auto g = random_floats(n, 91 + static_cast<uint32_t>(step));
        const DeviceArray<float> g_d(g);
        const float clip = step == 2 ? 0.25f : 1.0f;  // one clipped step
        cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n, 1e-3f, beta1, 0.99f, 1e-8f,
                          0.1f, step, clip);
        gpu::adamw_update(p_d.get(), p16_d.get(), g_d.get(), m_d.get(), v_d.get(), n, 1e-3f, beta1,
                          0.99f, 1e-8f, 0.1f, step, clip, stream.get());
        stream.sync();
      }
      // The same float operations in the same order on both sides, except that nvcc may fuse
      // a multiply and an add (and Eigen may too, differently): a few ulp per step, 1e-6 of
      // values of size ~1.
      const auto p_got = p_d.to_host();
      check_normalised("adamw param", p_got, p, 1e-6);
      check_normalised("adamw m", m_d.to_host(), m, 1e-6);
      check_normalised("adamw v", v_d.to_host(), v, 1e-6);
      // The bf16 copy is exactly the device's fp32 result rounded to nearest even.
      const auto p16 = p16_d.to_host();
      size_t mismatches = 0;
      for (size_t i = 0; i < n; ++i) mismatches += p16[i] != to_bf16(p_got[i]);
      CHECK(mismatches == 0);
    }
  }
}

TEST_CASE("cuda adamw without a bf16 copy leaves nothing else written", "[cuda][adamw]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  const size_t n = 257;
  std::vector<float> p = random_floats(n, 95), m(n, 0.0f), v(n, 0.0f);
  const auto g = random_floats(n, 96);
  DeviceArray<float> p_d(p), m_d(m), v_d(v);
  const DeviceArray<float> g_d(g);
  cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n, 3e-4f, 0.9f, 0.95f, 1e-8f, 0.0f, 1);
  gpu::adamw_update(p_d.get(), nullptr, g_d.get(), m_d.get(), v_d.get(), n, 3e-4f, 0.9f, 0.95f,
                    1e-8f, 0.0f, 1, 1.0f, stream.get());
  stream.sync();
  check_normalised("adamw param (no bf16 copy)", p_d.to_host(), p, 1e-6);
}

TEST_CASE("cuda sum of squares and clip scaling match the cpu kernels", "[cuda][grad_clip]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  DeviceArray<double> scratch(std::vector<double>(gpu::kSumSquaresScratch, 0.0));
  // Sizes: empty, one element, fewer elements than one block, more than the 1024 partial
  // blocks cover in one pass.
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{3} << 20}) {
    CAPTURE(n);
    const auto x = random_floats(n, 97, -3.0f, 3.0f);
    const double want = cpu::sum_squares(x.data(), n);
    const DeviceArray<float> x_d(x);
    auto out_d = DeviceArray<double>::poisoned(1);
    gpu::sum_squares(out_d.get(), x_d.get(), n, scratch.get(), stream.get());
    stream.sync();
    // Exact float-to-double squares summed in double in another order: relative error
    // <= n * 2^-53 ~ 3.5e-10 at n = 3 M, in practice far less.
    const double got = out_d.to_host()[0];
    CHECK(std::abs(got - want) <= 1e-10 * want);

    // The clip reads the norm on the device. Fed the CPU's sum (so both sides see the same
    // value), the coefficient and the scaling are the same float operations: exact.
    for (const float max_norm : {0.5f, 1e9f, 0.0f}) {
      CAPTURE(max_norm);
      std::vector<float> y = x;
      cpu::scale(y.data(), cpu::clip_coefficient(std::sqrt(want), max_norm), n);
      DeviceArray<float> y_d(x);
      const DeviceArray<double> sum_d(std::vector<double>{want});
      gpu::clip_scale(y_d.get(), n, sum_d.get(), max_norm, stream.get());
      stream.sync();
      check_normalised("clip scale", y_d.to_host(), y, 0.0);
    }
  }
}

TEST_CASE("cuda clip scaling leaves gradients untouched when the norm is not finite",
          "[cuda][grad_clip]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  const size_t n = 1000;
  const auto x = random_floats(n, 98, -3.0f, 3.0f);
  // The sum the caller reads back as the step's norm: NaN (a NaN gradient) or infinite (an
  // overflow). Scaling by the NaN coefficient, or by the 0 of an infinite norm, would overwrite
  // every gradient; the caller applies train.on_nan on the sum instead.
  for (const double bad : {std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity()}) {
    CAPTURE(bad);
    DeviceArray<float> y_d(x);
    const DeviceArray<double> sum_d(std::vector<double>{bad});
    gpu::clip_scale(y_d.get(), n, sum_d.get(), 1.0f, stream.get());
    stream.sync();
    const auto y = y_d.to_host();
    CHECK(std::memcmp(y.data(), x.data(), n * sizeof(float)) == 0);
    // The report stays where the caller reads it.
    const double back = sum_d.to_host()[0];
    CHECK((std::isnan(bad) ? std::isnan(back) : back == bad));
  }
}
