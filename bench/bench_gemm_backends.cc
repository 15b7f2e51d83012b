// GEMM rates of every CPU backend and precision Tessera trains with, in one run: Eigen fp32 (the
// reference), oneDNN fp32 and oneDNN bf16, square n^3 products for n = 256..2048 and the
// transposed operands a Linear layer's forward/backward use, best of several repeats (the
// machine is shared: the best is the estimate). These are the roofs MFU is measured against.
// Usage: bench_gemm_backends [threads (default 2)] [max_n (default 2048)]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "runtime/compute/cpu_backend.h"

namespace {

using tessera::Backend;
using tessera::DType;
using tessera::Tensor;

double best_seconds(Backend& b, const Tensor& x, bool tx, const Tensor& y, bool ty, Tensor& out, int repeats) {
  double best = 1e30;
  for (int r = 0; r <= repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    b.matmul({x, tx, y, ty, out});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::min(best, s);
  }
  return best;
}

Tensor input(Backend& b, int64_t rows, int64_t cols, DType dtype) {
  Tensor f = Tensor::full({rows, cols}, 0.5f);
  if (dtype == DType::F32) return f;
  Tensor t = Tensor::empty({rows, cols}, dtype);
  b.cast(f, t);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int max_n = argc > 2 ? std::atoi(argv[2]) : 2048;
  omp_set_num_threads(threads);
  tessera::CpuBackend eigen(tessera::CpuGemm::Eigen), onednn(tessera::CpuGemm::OneDnn);
  struct Row {
    const char* name;
    Backend* backend;
    DType dtype;
  };
  const Row rows[] = {{"eigen fp32", &eigen, DType::F32}, {"onednn fp32", &onednn, DType::F32},
                      {"onednn bf16", &onednn, DType::BF16}};
  std::printf("threads %d; GFLOP/s, best of repeats; onednn kernels: fp32 %s, bf16 %s\n\n", threads,
              onednn.matmul_implementation(DType::F32).c_str(), onednn.matmul_implementation(DType::BF16).c_str());
  std::printf("| n | op | eigen fp32 | onednn fp32 | onednn bf16 | bf16 / eigen |\n|---|---|---:|---:|---:|---:|\n");
  for (int n = 256; n <= max_n; n *= 2) {
    const int repeats = std::max(3, static_cast<int>(4e9 / (2.0 * n * n * n)));
    // nn: a plain product; nt: x W^T (Linear forward); tn: dY^T X (weight gradient).
    for (auto [op, ta, tb] : {std::tuple{"nn", false, false}, std::tuple{"nt", false, true}, std::tuple{"tn", true, false}}) {
      double gflops[3];
      for (int i = 0; i < 3; ++i) {
        Tensor a = input(*rows[i].backend, n, n, rows[i].dtype), b = input(*rows[i].backend, n, n, rows[i].dtype);
        Tensor c = Tensor::zeros({n, n});
        gflops[i] = 2.0 * n * n * n / best_seconds(*rows[i].backend, a, ta, b, tb, c, repeats) / 1e9;
      }
      std::printf("| %d | %s | %.0f | %.0f | %.0f | %.2fx |\n", n, op, gflops[0], gflops[1], gflops[2],
                  gflops[2] / gflops[0]);
    }
  }
  return 0;
}
