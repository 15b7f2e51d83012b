// Tensor-parallel communication as named forward/backward pairs (Megatron's mappings).
// Layers call these and never issue collectives themselves. With no tp group (size 1) every
// function is the identity.
//
// A tensor-parallel region (column-parallel linear ... row-parallel linear) is entered and
// exited through one pair each:
//   without sequence parallelism: enter = copy-to-tp      (identity fwd, all-reduce bwd)
//                                 exit  = reduce-from-tp  (all-reduce fwd, identity bwd)
//   with sequence parallelism:    enter = gather-from-sp  (all-gather rows fwd, reduce-scatter bwd)
//                                 exit  = scatter-to-sp   (reduce-scatter rows fwd, all-gather bwd)
// Outside the regions, sequence parallelism keeps only this rank's contiguous 1/tp of the
// rows ([batch * seq] tokens), so LayerNorm and residual activations shrink by tp.
#pragma once

#include "runtime/comm/communicator.h"
#include "runtime/tensor.h"

namespace tessera {

// Time spent in tensor-parallel communication, accumulated by the functions below when a
// TpGroup points at one (for the step-time breakdown).
struct TpCommStats {
  double seconds = 0;
};

// The tensor-parallel group a layer belongs to. comm may be null when size == 1.
struct TpGroup {
  Communicator* comm = nullptr;
  int rank = 0;
  int size = 1;
  bool sequence_parallel = false;
  TpCommStats* stats = nullptr;
  static TpGroup single() { return {}; }
  bool sequence_sharded() const { return sequence_parallel && size > 1; }
  // Rows of an activation outside the tp regions for n tokens.
  int64_t outside_rows(int64_t n) const { return sequence_sharded() ? n / size : n; }
};

// An all-reduce over the tp group outside the named pairs (the vocab-parallel loss's max and
// sums, sequence-parallel gradients), timed like them.
void tp_all_reduce(Tensor& t, ReduceOp op, const TpGroup& tp);

// copy-to-tp: identity forward, all-reduce (sum) of the input gradient backward.
Tensor copy_to_tp_forward(const Tensor& x, const TpGroup& tp);
Tensor copy_to_tp_backward(const Tensor& dx, const TpGroup& tp);

// reduce-from-tp: all-reduce (sum) of partial outputs forward, identity backward.
Tensor reduce_from_tp_forward(const Tensor& y, const TpGroup& tp);
Tensor reduce_from_tp_backward(const Tensor& dy, const TpGroup& tp);

// gather-from-sp: all-gather of the row shards forward, reduce-scatter (sum) backward.
Tensor gather_from_sp_forward(const Tensor& x_shard, const TpGroup& tp);
Tensor gather_from_sp_backward(const Tensor& dx_full, const TpGroup& tp);

// scatter-to-sp: reduce-scatter (sum) of partial outputs into row shards forward,
// all-gather backward.
Tensor scatter_to_sp_forward(const Tensor& y_partial, const TpGroup& tp);
Tensor scatter_to_sp_backward(const Tensor& dy_shard, const TpGroup& tp);

// The region entry/exit pairs, choosing the variant by tp.sequence_parallel.
Tensor enter_tp_region_forward(const Tensor& x, const TpGroup& tp);
Tensor enter_tp_region_backward(const Tensor& dx, const TpGroup& tp);
Tensor exit_tp_region_forward(const Tensor& y, const TpGroup& tp);
Tensor exit_tp_region_backward(const Tensor& dy, const TpGroup& tp);

}  // namespace tessera
