// The data-parallel communication of local SGD / DiLoCo per training step, for the layout
// search and `tessera plan`: one all-reduce of every parameter per sync_interval (H) steps,
// blocking, or (streaming) in F fragments whose reductions each hide behind outer_delay (tau)
// steps of compute. The link can still be the bottleneck: it carries F fragments per H steps.
#pragma once

#include <cstdint>

#include "core/config.h"
#include "partitioner/cost_model.h"

namespace tessera {

struct OuterSyncCostOptions {
  int sync_interval = 1;
  int fragments = 1;
  int delay = 0;
  double bytes_per_param = 4;  // 2 with outer_dtype bf16
  bool sharded = false;        // zero_stage 1: reduce-scatter + all-gather instead of an all-reduce
};

// The outer sync settings of a config (its parallel section).
OuterSyncCostOptions outer_sync_cost_options(const ParallelConfig& parallel);

struct DpCommCost {
  double comm_s = 0;     // link time per step (averaged over H steps)
  double exposed_s = 0;  // of it, the time a step waits (averaged over H steps)
};

// params: the parameters of one rank (its stage's share); step_s: the rank's step time
// without data-parallel communication, which a delayed reduction overlaps.
DpCommCost outer_sync_cost(const LinkModel& link, int64_t params, int dp, const OuterSyncCostOptions& options,
                           double step_s);

}  // namespace tessera
