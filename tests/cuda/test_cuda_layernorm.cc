// [cuda] tests of the fused LayerNorm kernels against the CPU twin.
//
// Tolerances: the mean and variance are float sums over the row in a different order (a warp's
// lanes, then a shuffle tree), so mean, rstd and the output differ by a few ulp (1e-5 of the
// largest value leaves a wide margin). The parameter gradients are column sums over up to 1031
// rows, ~sqrt(rows) ulp of the partial sums apart: also within 1e-5.
#include <tuple>

#include "kernels/cuda/layernorm_cuda.h"
#include "kernels/layernorm.h"
#include "tests/cuda/cuda_test_util.h"

namespace cpu = tessera::kernels::cpu;
namespace gpu = tessera::kernels::cuda;
using namespace tessera::cuda_testing;

TEST_CASE("cuda layernorm forward and backward match the cpu kernels", "[cuda][layernorm]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  // Widths below one warp, odd, and GPT-2's 768; row counts not a multiple of 8 rows per block.
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {3, 5}, {37, 33}, {1031, 768}, {8, 1537}};
  for (const auto& [rows, cols] : shapes) {
    CAPTURE(rows, cols);
    const size_t n = rows * cols;
    // A large common offset per row checks the two-pass variance (no E[x^2] - E[x]^2).
    auto x = random_floats(n, 50, -2.0f, 2.0f);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) x[r * cols + c] += static_cast<float>(r % 7) * 10.0f;
    }
    const auto w = random_floats(cols, 51, 0.5f, 1.5f), b = random_floats(cols, 52);
    const auto dy = random_floats(n, 53);
    const auto dw0 = random_floats(cols, 54), db0 = random_floats(cols, 55);

    std::vector<float> y(n), mean(rows), rstd(rows), dx(n), dw = dw0, db = db0;
    cpu::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows,
                           cols);
    cpu::layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(),
                            mean.data(), rstd.data(), rows, cols);

    const DeviceArray<float> x_d(x), w_d(w), b_d(b), dy_d(dy);
    auto y_d = DeviceArray<float>::poisoned(n), mean_d = DeviceArray<float>::poisoned(rows),
         rstd_d = DeviceArray<float>::poisoned(rows), dx_d = DeviceArray<float>::poisoned(n);
    DeviceArray<float> dw_d(dw0), db_d(db0);
    gpu::layernorm_forward(y_d.get(), mean_d.get(), rstd_d.get(), x_d.get(), w_d.get(), b_d.get(),
                           rows, cols, stream.get());
    gpu::layernorm_backward(dx_d.get(), dw_d.get(), db_d.get(), dy_d.get(), x_d.get(), w_d.get(),
                            mean_d.get(), rstd_d.get(), rows, cols, stream.get());
    stream.sync();
    check_normalised("layernorm out", y_d.to_host(), y, 1e-5);
    check_normalised("layernorm mean", mean_d.to_host(), mean, 1e-5);
    check_normalised("layernorm rstd", rstd_d.to_host(), rstd, 1e-5);
    check_normalised("layernorm dinp", dx_d.to_host(), dx, 1e-5);
    check_normalised("layernorm dweight (accumulated)", dw_d.to_host(), dw, 1e-5);
    check_normalised("layernorm dbias (accumulated)", db_d.to_host(), db, 1e-5);

    // dinp may overwrite dout in place (the parameter gradients are taken first).
    DeviceArray<float> inplace_d(dy);
    DeviceArray<float> dw2_d(dw0), db2_d(db0);
    gpu::layernorm_backward(inplace_d.get(), dw2_d.get(), db2_d.get(), inplace_d.get(), x_d.get(),
                            w_d.get(), mean_d.get(), rstd_d.get(), rows, cols, stream.get());
    stream.sync();
    check_normalised("layernorm dinp in place", inplace_d.to_host(), dx, 1e-5);
    check_normalised("layernorm dweight in place", dw2_d.to_host(), dw, 1e-5);
  }
}
