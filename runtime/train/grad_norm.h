// Global-norm gradient clipping across the shards of a model.
#pragma once

#include <vector>

#include "runtime/compute/backend.h"
#include "runtime/model/parameter.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

// The squared L2 norm of `counted` (this rank's gradient pieces, each counted once: callers skip
// tp-replicated copies on tp ranks > 0 and a tied head's copy of the table) summed over dp (null
// or size 1: none), the tp group and pp (null or size 1: none): a [1] fp32 tensor on ops' device
// (the groups' communicators move tensors of that device), not read back. The gradient norm of
// every optimizer (plain, ZeRO-1, ZeRO-2/3); the trainer reads it with the step's loss, in one
// host wait on a GPU.
Tensor squared_norm(const std::vector<const Tensor*>& counted, Communicator* dp, const TpGroup& tp, Communicator* pp,
                    Backend& ops);

// The pieces of params' gradients the norm counts (see squared_norm).
std::vector<const Tensor*> counted_gradients(const std::vector<Parameter*>& params, const TpGroup& tp);

// Computes the global L2 norm of all gradients (tp shards summed, replicated parameters
// counted once, pipeline stages summed over pp when given), scales them by
// min(1, max_norm / (norm + 1e-6)) when max_norm > 0, and returns the norm before clipping
// (as torch.nn.utils.clip_grad_norm_). The gradients live on `ops`' device; the norm is read back
// (one wait). For a model driven without a Trainer (the parity tests).
double clip_grad_norm(const std::vector<Parameter*>& params, double max_norm, const TpGroup& tp, Communicator* pp,
                      Backend& ops);

}  // namespace tessera
