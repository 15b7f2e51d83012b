// Local SGD / DiLoCo communication cost.
#include "partitioner/outer_sync_cost.h"

#include <algorithm>

namespace tessera {

OuterSyncCostOptions outer_sync_cost_options(const ParallelConfig& p) {
  OuterSyncCostOptions o;
  o.sync_interval = p.sync_interval;
  o.fragments = p.outer_fragments;
  o.delay = p.outer_delay;
  o.bytes_per_param = p.outer_dtype == "bf16" ? 2 : 4;
  o.sharded = p.zero_stage >= 1;
  return o;
}

DpCommCost outer_sync_cost(const LinkModel& link, int64_t params, int dp, const OuterSyncCostOptions& o,
                           double step_s) {
  DpCommCost c;
  if (dp <= 1) return c;
  const double fragment_bytes = o.bytes_per_param * static_cast<double>(params) / o.fragments;
  const double fragment_s = o.sharded ? link.reduce_scatter_seconds(fragment_bytes, dp) +
                                            link.all_gather_seconds(fragment_bytes, dp)
                                      : link.all_reduce_seconds(fragment_bytes, dp);
  const double syncs_per_step = static_cast<double>(o.fragments) / o.sync_interval;
  c.comm_s = syncs_per_step * fragment_s;
  // A delayed reduction runs behind `delay` steps of compute; only its remainder is waited for.
  const double exposed_per_sync = std::max(0.0, fragment_s - o.delay * step_s);
  // However they are staggered, the link cannot carry more than it can in the time the steps
  // take: what exceeds a step's own time shows up in every step.
  c.exposed_s = std::max(syncs_per_step * exposed_per_sync, c.comm_s - step_s);
  return c;
}

}  // namespace tessera
