// Global-norm gradient clipping across the shards of a model.
#pragma once

#include <vector>

#include "runtime/compute/backend.h"
#include "runtime/model/parameter.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

// Computes the global L2 norm of all gradients (tp shards summed, replicated parameters
// counted once, pipeline stages summed over pp when given), scales them by
// min(1, max_norm / (norm + 1e-6)) when max_norm > 0, and returns the norm before clipping
// (as torch.nn.utils.clip_grad_norm_). The gradients live on `ops`' device; the partial sums
// come back to the host (one wait) and are reduced over tp/pp in tensors on that device.
double clip_grad_norm(const std::vector<Parameter*>& params, double max_norm, const TpGroup& tp, Communicator* pp,
                      Backend& ops);

// A rank's partial sum of squares summed over the ranks of dp (null or size 1: none), the tp
// group and pp (null or size 1: none), as one fp32 scalar on `device` (the groups'
// communicators move tensors of that device), read back once: the gradient norm's reduction for
// every optimizer (plain, ZeRO-1, ZeRO-2/3).
double sum_over_groups(double sq, Communicator* dp, const TpGroup& tp, Communicator* pp, Device device);

}  // namespace tessera
