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

}  // namespace tessera
