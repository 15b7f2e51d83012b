// GEMM roof measurement.
#include "runtime/train/gemm_roof.h"

#include <algorithm>
#include <chrono>

#include "kernels/matmul.h"
#include "runtime/tensor.h"

namespace tessera {

double measure_gemm_flops(int n, int repeats) {
  Tensor a = Tensor::full({n, n}, 0.5f), b = Tensor::full({n, n}, 0.25f), c = Tensor::zeros({n, n});
  double best = 1e30;
  for (int r = 0; r < repeats + 1; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    kernels::cpu::gemm(false, false, n, n, n, 1.f, a.f32(), n, b.f32(), n, 0.f, c.f32(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::min(best, s);  // the first run warms caches and threads
  }
  return 2.0 * n * n * static_cast<double>(n) / best;
}

}  // namespace tessera
