// The machine's GEMM roof for MFU: FLOP/s of a large square product through the run's own
// Backend and compute dtype (oneDNN's bf16 kernel for a bf16 run, its fp32 one for fp32), best of
// several runs so that one noisy sample on a shared machine does not become the roof.
#pragma once

#include <string>

#include "runtime/compute/backend.h"

namespace tessera {

struct GemmRoof {
  double flops = 0;            // per second, this process's threads
  std::string implementation;  // the backend's kernel name, e.g. "brg:avx512_core_bf16"
  std::string dtype;           // "F32", "BF16", "F16"
};

// Best of `repeats` n x n x n products (after one warm-up) with `dtype` inputs.
GemmRoof measure_gemm_roof(Backend& backend, DType dtype, int n = 1024, int repeats = 10);

}  // namespace tessera
