// GEMM rates through a Backend: the one timing the trainer's MFU roof and `tessera plan
// --calibrate` share. The roof is the FLOP/s of a large square product through the run's own
// Backend and compute dtype (oneDNN's bf16 kernel for a bf16 run, its fp32 one for fp32), best of
// several runs so that one noisy sample on a shared machine does not become the roof.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "runtime/compute/backend.h"

namespace tessera {

struct GemmRoof {
  double flops = 0;            // per second, this process's threads
  std::string implementation;  // the backend's kernel name, e.g. "brg:avx512_core_bf16"
  std::string dtype;           // "F32", "BF16", "F16"
};

// FLOP/s of C[m, n] = A[m, k] B[k, n] with `dtype` inputs: the best of `trials` timings after one
// warm-up run (which creates the primitive and wakes the threads); each timing repeats the product
// until it took at least `min_seconds`, so that small shapes are not timed at the clock's grain.
double measure_gemm_rate(Backend& backend, int64_t m, int64_t n, int64_t k, DType dtype, int trials,
                         double min_seconds = 0.01);

// The roof: measure_gemm_rate of an n x n x n product.
GemmRoof measure_gemm_roof(Backend& backend, DType dtype, int n = 1024, int trials = 10);

// The roof once a logged window ran at `achieved` FLOP/s: `roof` when it is higher. Otherwise
// the measurement behind it was slowed (another process on the cores for its ~0.1 s), so the
// roof is measured again with `remeasure`, and is at least `achieved`: an MFU above 100% would
// be a false figure.
double roof_at_least(double roof, double achieved, const std::function<double()>& remeasure);

}  // namespace tessera
