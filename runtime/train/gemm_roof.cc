// GEMM roof measurement through a Backend.
#include "runtime/train/gemm_roof.h"

#include <algorithm>
#include <chrono>

namespace tessera {

GemmRoof measure_gemm_roof(Backend& backend, DType dtype, int n, int repeats) {
  Tensor a32 = Tensor::full({n, n}, 0.5f), b32 = Tensor::full({n, n}, 0.25f), c = Tensor::zeros({n, n});
  Tensor a = a32, b = b32;
  if (dtype != DType::F32) {
    a = Tensor::empty({n, n}, dtype);
    b = Tensor::empty({n, n}, dtype);
    backend.cast(a32, a);
    backend.cast(b32, b);
  }
  double best = 1e30;
  for (int r = 0; r < repeats + 1; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    backend.matmul({a, false, b, false, c});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::min(best, s);  // the first run creates the primitive, warms caches and threads
  }
  return {2.0 * n * n * static_cast<double>(n) / best, backend.matmul_implementation(dtype), dtype_name(dtype)};
}

}  // namespace tessera
