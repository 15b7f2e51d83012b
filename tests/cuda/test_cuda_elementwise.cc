// [cuda] tests of the elementwise kernels and the bias kernels against their CPU twins: GELU,
// ReLU, residual/accumulate/scale, bias forward/backward, bf16 <-> fp32 casts.
//
// Sizes: one element, odd sizes that leave a partial block, and more elements than the capped
// grid covers in one pass (4096 blocks x 256 threads), so the grid-stride loops are exercised.
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/bias.h"
#include "kernels/cuda/bias_cuda.h"
#include "kernels/cuda/cast_cuda.h"
#include "kernels/cuda/gelu_cuda.h"
#include "kernels/cuda/relu_cuda.h"
#include "kernels/cuda/residual_cuda.h"
#include "kernels/gelu.h"
#include "kernels/relu.h"
#include "kernels/residual.h"
#include "tests/cuda/cuda_test_util.h"

namespace cpu = tessera::kernels::cpu;
namespace gpu = tessera::kernels::cuda;
using namespace tessera::cuda_testing;

namespace {
const size_t kSizes[] = {1, 1000, (size_t{1} << 20) + 7};
}  // namespace

TEST_CASE("cuda gelu matches the cpu kernel", "[cuda][gelu]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  for (size_t n : kSizes) {
    CAPTURE(n);
    const auto x = random_floats(n, 1, -5.0f, 5.0f), dy = random_floats(n, 2);
    std::vector<float> y(n), dx(n);
    cpu::gelu_forward(y.data(), x.data(), n);
    cpu::gelu_backward(dx.data(), x.data(), dy.data(), n);
    const DeviceArray<float> x_d(x), dy_d(dy);
    auto y_d = DeviceArray<float>::poisoned(n), dx_d = DeviceArray<float>::poisoned(n);
    gpu::gelu_forward(y_d.get(), x_d.get(), n, stream.get());
    gpu::gelu_backward(dx_d.get(), x_d.get(), dy_d.get(), n, stream.get());
    stream.sync();
    // tanhf against Eigen's rational tanh: a few ulp each, amplified in the backward pass by the
    // cancellation of its two terms near x = -1.7; 1e-5 of the largest value is ~100 ulp.
    check_normalised("gelu forward", y_d.to_host(), y, 1e-5);
    check_normalised("gelu backward", dx_d.to_host(), dx, 1e-5);
  }
}

TEST_CASE("cuda relu matches the cpu kernel exactly", "[cuda][relu]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  for (size_t n : kSizes) {
    CAPTURE(n);
    const auto x = random_floats(n, 3), dy = random_floats(n, 4);
    std::vector<float> y(n), dx(n);
    cpu::relu_forward(y.data(), x.data(), n);
    cpu::relu_backward(dx.data(), x.data(), dy.data(), n);
    const DeviceArray<float> x_d(x), dy_d(dy);
    auto y_d = DeviceArray<float>::poisoned(n), dx_d = DeviceArray<float>::poisoned(n);
    gpu::relu_forward(y_d.get(), x_d.get(), n, stream.get());
    gpu::relu_backward(dx_d.get(), x_d.get(), dy_d.get(), n, stream.get());
    stream.sync();
    // A max and a select: no rounding at all.
    check_normalised("relu forward", y_d.to_host(), y, 0.0);
    check_normalised("relu backward", dx_d.to_host(), dx, 0.0);
  }
}

TEST_CASE("cuda residual, accumulate and scale match the cpu kernels exactly",
          "[cuda][residual]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  for (size_t n : kSizes) {
    CAPTURE(n);
    const auto a = random_floats(n, 5), b = random_floats(n, 6);
    // One IEEE operation per element on both sides: results must be bit-identical.
    std::vector<float> sum(n);
    cpu::residual_forward(sum.data(), a.data(), b.data(), n);
    const DeviceArray<float> a_d(a), b_d(b);
    auto sum_d = DeviceArray<float>::poisoned(n);
    gpu::residual_forward(sum_d.get(), a_d.get(), b_d.get(), n, stream.get());

    // In place (out aliases a), as the transformer block's residual stream uses it.
    DeviceArray<float> inplace_d(a);
    gpu::residual_forward(inplace_d.get(), inplace_d.get(), b_d.get(), n, stream.get());

    std::vector<float> acc = a;
    cpu::accumulate(acc.data(), b.data(), n);
    DeviceArray<float> acc_d(a);
    gpu::accumulate(acc_d.get(), b_d.get(), n, stream.get());

    std::vector<float> scaled = a;
    cpu::scale(scaled.data(), 0.37f, n);
    DeviceArray<float> scaled_d(a);
    gpu::scale(scaled_d.get(), 0.37f, n, stream.get());
    stream.sync();
    check_normalised("residual", sum_d.to_host(), sum, 0.0);
    check_normalised("residual in place", inplace_d.to_host(), sum, 0.0);
    check_normalised("accumulate", acc_d.to_host(), acc, 0.0);
    check_normalised("scale", scaled_d.to_host(), scaled, 0.0);
  }
}

TEST_CASE("cuda bias forward and backward match the cpu kernels", "[cuda][bias]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  // Column counts below, at and above one 32-column strip, rows not a multiple of 32.
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {37, 129}, {1000, 768}, {4099, 33}};
  for (const auto& [rows, cols] : shapes) {
    CAPTURE(rows, cols);
    const size_t n = rows * cols;
    const auto x = random_floats(n, 7), bias = random_floats(cols, 8), dout = random_floats(n, 9);
    const auto dbias0 = random_floats(cols, 10);  // accumulated into, not overwritten
    std::vector<float> y = x, dbias = dbias0;
    cpu::bias_forward(y.data(), bias.data(), rows, cols);
    cpu::bias_backward(dbias.data(), dout.data(), rows, cols);
    DeviceArray<float> y_d(x), dbias_d(dbias0);
    const DeviceArray<float> bias_d(bias), dout_d(dout);
    gpu::bias_forward(y_d.get(), bias_d.get(), rows, cols, stream.get());
    gpu::bias_backward(dbias_d.get(), dout_d.get(), rows, cols, stream.get());
    stream.sync();
    check_normalised("bias forward", y_d.to_host(), y, 0.0);  // one add per element
    // Column sums of up to 4099 terms of size 1 in a different order: the rounding error grows
    // like sqrt(rows) ulp of the partial sums (~1e-6 of the largest sum); 1e-5 leaves margin.
    check_normalised("bias backward", dbias_d.to_host(), dbias, 1e-5);
  }
}

TEST_CASE("cuda bf16 casts round to nearest even and back exactly", "[cuda][cast]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  // Random values over many binades plus the edge cases: ties, signed zero, subnormals, the
  // largest float (rounds to inf), infinities.
  std::vector<float> x = random_floats(100003, 11, -3.0f, 3.0f);
  for (size_t i = 0; i < x.size(); i += 3) x[i] = std::ldexp(x[i], static_cast<int>(i % 200) - 100);
  const float specials[] = {0.0f, -0.0f, 1.0f + 1.0f / 256.0f,  // a tie: rounds to even (1.0)
                            1.0f + 3.0f / 256.0f,               // a tie: rounds up
                            std::numeric_limits<float>::denorm_min(), -1e-39f,
                            std::numeric_limits<float>::max(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::infinity(), 3.3895314e38f};
  x.insert(x.end(), std::begin(specials), std::end(specials));
  const size_t n = x.size();
  const DeviceArray<float> x_d(x);
  auto h_d = DeviceArray<uint16_t>::poisoned(n);
  auto back_d = DeviceArray<float>::poisoned(n);
  gpu::cast_f32_to_bf16(h_d.get(), x_d.get(), n, stream.get());
  gpu::cast_bf16_to_f32(back_d.get(), h_d.get(), n, stream.get());
  stream.sync();
  const auto h = h_d.to_host();
  const auto back = back_d.to_host();
  size_t mismatches = 0, first = n;
  for (size_t i = 0; i < n; ++i) {
    const float widened = from_bf16(h[i]);  // bit-compared: -0.0f must stay -0.0f
    if (h[i] != to_bf16(x[i]) || std::memcmp(&back[i], &widened, sizeof(float)) != 0) {
      if (first == n) first = i;
      ++mismatches;
    }
  }
  INFO("first mismatch at " << first << ": x = " << (first < n ? x[first] : 0.0f) << ", device "
                            << (first < n ? h[first] : 0) << ", host "
                            << (first < n ? to_bf16(x[first]) : 0));
  CHECK(mismatches == 0);

  // NaN stays NaN.
  const std::vector<float> nan{std::numeric_limits<float>::quiet_NaN()};
  const DeviceArray<float> nan_d(nan);
  auto nan_h = DeviceArray<uint16_t>::poisoned(1);
  auto nan_back = DeviceArray<float>(std::vector<float>{0.0f});
  gpu::cast_f32_to_bf16(nan_h.get(), nan_d.get(), 1, stream.get());
  gpu::cast_bf16_to_f32(nan_back.get(), nan_h.get(), 1, stream.get());
  stream.sync();
  CHECK(std::isnan(nan_back.to_host()[0]));
}
