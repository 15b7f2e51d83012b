// GEMM rate and roof measurement through a Backend.
#include "runtime/train/gemm_roof.h"

#include <algorithm>
#include <chrono>

#include "runtime/device/device_memory.h"

namespace tessera {

double measure_gemm_rate(Backend& backend, int64_t m, int64_t n, int64_t k, DType dtype, int trials,
                         double min_seconds) {
  using Clock = std::chrono::steady_clock;
  const Device device = backend.device();
  Tensor a = to_device(Tensor::full({m, k}, 0.5f), device), b = to_device(Tensor::full({k, n}, 0.25f), device);
  Tensor c = Tensor::zeros({m, n}, DType::F32, device);
  // A GPU backend only enqueues: each timed product waits for the device.
  const auto finish = [&] {
    if (!device.is_cpu()) device_memory(device)->synchronize();
  };
  if (dtype != DType::F32) {
    Tensor a16 = Tensor::empty(a.shape(), dtype, device), b16 = Tensor::empty(b.shape(), dtype, device);
    backend.cast(a, a16);
    backend.cast(b, b16);
    a = a16;
    b = b16;
  }
  const MatmulArgs product{a, false, b, false, c};
  backend.matmul(product);
  finish();
  double best = 1e30;
  for (int t = 0; t < trials; ++t) {
    int reps = 0;
    double seconds = 0;
    const auto t0 = Clock::now();
    do {
      backend.matmul(product);
      finish();
      ++reps;
      seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (seconds < min_seconds);
    best = std::min(best, seconds / reps);
  }
  return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) / best;
}

GemmRoof measure_gemm_roof(Backend& backend, DType dtype, int n, int trials) {
  return {measure_gemm_rate(backend, n, n, n, dtype, trials), backend.matmul_implementation(dtype),
          dtype_name(dtype)};
}

double roof_at_least(double roof, double achieved, const std::function<double()>& remeasure) {
  if (achieved <= roof) return roof;
  return std::max(remeasure(), achieved);
}

}  // namespace tessera
