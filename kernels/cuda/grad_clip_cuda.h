// CUDA pieces of global-norm gradient clipping, the device twins of kernels/grad_clip.h. The
// sum of squares stays on the device (for an all-reduce over ranks and the clip below) so a
// step needs no host round trip. Host launchers enqueue on the given stream and return without
// synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

// Doubles of device scratch that sum_squares needs.
constexpr int64_t kSumSquaresScratch = 1024;

// *out = sum of x[i]^2, accumulated in double (written). `scratch` holds kSumSquaresScratch
// doubles. Deterministic: fixed per-block partial sums, added in block order.
void sum_squares(double* out, const float* x, int64_t n, double* scratch, cudaStream_t stream);
// *out = the n doubles of xs added in order, rounded to float (0 for n = 0). One thread: n is the
// number of parameters, not elements.
void add_in_order(float* out, const double* xs, int64_t n, cudaStream_t stream);
// x *= min(1, max_norm / (sqrt(*sum_sq) + 1e-6)), the coefficient of kernels/grad_clip.h's
// clip_coefficient, read from the device; max_norm <= 0 disables clipping (nothing launched).
// A NaN or infinite *sum_sq is the non-finite-norm report: x is left untouched and the caller,
// which reads *sum_sq back once per step for the logged norm, decides (train.on_nan: abort, or
// skip the update), as runtime/train/grad_norm.cc and the trainer do on the CPU.
void clip_scale(float* x, int64_t n, const double* sum_sq, float max_norm, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
