// Host launchers of deliberately wrong (and, as controls, correct) kernels that the emulator's
// own tests (test_emulator_checks.cc) run to show each check refusing what a GPU would reject,
// fault on or compute differently. Built only for the emulator, never by nvcc.
#pragma once

#include <cuda_runtime.h>

namespace emu_checks {

// x[i] *= 2 for i < n: fine with device memory, refused with a host pointer.
void scale(float* x, int n);
// out[0] = sum of `bytes / 4` floats of dynamic shared memory after filling them (one block).
void dynamic_shared(float* out, size_t bytes);
// The cudaFuncSetAttribute(MaxDynamicSharedMemorySize) opt-in of dynamic_shared's kernel.
cudaError_t opt_in_dynamic_shared(int bytes);
// A kernel with a 40 KiB static __shared__ array, launched with `dynamic_bytes` more.
void static_and_dynamic_shared(float* out, size_t dynamic_bytes);
// Thread 0 of each of `blocks` blocks stores a static __shared__ cell into out[block] before
// writing it: what a block reads is whatever the cell held, never its own write.
void stale_static_shared(float* out, int blocks);
// Each thread reads its neighbour's dynamic shared slot without a __syncthreads in between.
void missing_barrier(float* out, int threads);
// Block b writes x[b] = x[b - 1] + 1: it assumes the blocks run in order, which CUDA does not
// promise.
void chain_across_blocks(float* x, int blocks);

}  // namespace emu_checks
