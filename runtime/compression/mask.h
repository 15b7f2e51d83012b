// Pruning masks during training: the helpers that keep pruned weights exactly zero. A mask is
// a float tensor of 0 (pruned) and 1 (kept) shaped like the parameter's shard (Parameter::mask).
//
// Masking the gradient alone would already keep a zero weight at zero under AdamW (its moments
// stay 0, so the step and the decoupled decay of a zero weight are 0), but only as long as the
// moments started at zero; the optimizers also re-apply the mask to the weight and moments
// after each update, so nothing can leak in.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/model/parameter.h"

namespace tessera {

// x[i] *= mask[i] for n elements.
void apply_mask(float* x, const float* mask, int64_t n);

// Zeroes the masked entries of each masked parameter's gradient (before norms, clipping and
// the data-parallel reduction; masks are the same on every replica).
void mask_gradients(const std::vector<Parameter*>& params);

// Parameters with a mask, and zeros in their values: for logs and tests.
struct SparsityStats {
  int64_t masked_params = 0;  // parameters with a mask
  int64_t elements = 0;       // entries of masked parameters
  int64_t pruned = 0;         // masked-out entries
  int64_t nonzero_pruned = 0; // masked-out entries whose value is not exactly zero (a bug)
};
SparsityStats sparsity_stats(const std::vector<Parameter*>& params);

}  // namespace tessera
