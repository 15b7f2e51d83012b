// ZeRO in the planner: what each stage sends per step and how much of it the compute hides.
// Stages, as the ZeRO paper and PyTorch FSDP define them (N = dp ranks, P = this rank's
// parameters after tp/pp sharding, m = microbatches per step):
//   0: gradients all-reduced once per step (bucketed, overlapped with the last backward).
//   1: gradients reduce-scattered once after backward, parameters all-gathered after the update.
//   2: each microbatch's gradients reduce-scattered into the owner's shard unit by unit during
//      its backward (only the shard is kept between microbatches), parameters all-gathered
//      after the update.
//   3: parameters sharded at rest; each unit (a layer of the layer graph, like FSDP wrapping a
//      block) all-gathered in the compute precision before its forward and again before its
//      backward, freed after use, with up to `prefetch` gathers in flight ahead of the unit
//      computing; gradients reduce-scattered as in stage 2. Microbatches do not reuse a
//      gathered unit: every microbatch gathers again (the memory of stage 3 is the point).
// Gradients are reduced in fp32, or in bf16 with parallel.grad_reduce_dtype: bf16. With full
// recompute a stage-3 unit is gathered a third time per microbatch, for the forward rerun before
// its backward. Ring collectives: a rank sends (N-1)/N of the buffer per reduce-scatter or
// all-gather, twice that per all-reduce.
#pragma once

#include <cstdint>
#include <vector>

namespace tessera {

// Bytes one rank sends per step for the data-parallel synchronisation of its P parameters.
struct DpTraffic {
  double reduce_scatter = 0;  // gradients into the owners' shards
  double all_gather = 0;      // parameters (after the update, or before forward and backward)
  double all_reduce = 0;      // stage 0's gradient all-reduce
  double total() const { return reduce_scatter + all_gather + all_reduce; }
};
DpTraffic dp_traffic_bytes(int64_t params, int dp, int zero_stage, int microbatches, bool mixed_precision,
                           bool bf16_reduce = false, bool full_recompute = false);

// Bytes per element of a gathered ZeRO-3 unit: the compute precision.
inline int64_t gather_element_bytes(bool mixed_precision) { return mixed_precision ? 2 : 4; }
// Bytes per element of a gradient on the dp link: fp32, or bf16 (parallel.grad_reduce_dtype).
inline int64_t grad_element_bytes(bool bf16_reduce) { return bf16_reduce ? 2 : 4; }

// One microbatch's pass over a sequence of units (forward: in order; backward: the caller
// passes them reversed) with the units' collectives on one serial link. compute[i]: the
// unit's compute; gather[i]: its all-gather before the compute (0 when not gathered);
// scatter[i]: its gradient reduce-scatter, issued when its compute ends (0 in forward). With
// prefetch k >= 1 the gather of unit i is issued when unit i - k starts computing (k units are
// gathered ahead of the one computing); k = 0 issues it when unit i is needed.
struct UnitOverlap {
  std::vector<double> wait;  // per unit: compute stalled waiting for its gather
  double tail = 0;           // after the last compute: reduce-scatters still on the link
  double link_busy = 0;      // all collective time of the pass
  // The share of collective time hidden behind compute.
  double hidden_share() const;
};
UnitOverlap overlap_units(const std::vector<double>& compute, const std::vector<double>& gather,
                          const std::vector<double>& scatter, int prefetch);

}  // namespace tessera
