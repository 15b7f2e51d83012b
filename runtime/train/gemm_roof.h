// Measures the machine's fp32 GEMM roof (FLOP/s of a large square sgemm on the CPU kernels)
// to turn step times into MFU.
#pragma once

namespace tessera {

// FLOP/s of an n x n x n sgemm with the current OpenMP thread count, best of `repeats`.
double measure_gemm_flops(int n = 512, int repeats = 5);

}  // namespace tessera
