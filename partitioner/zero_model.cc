// ZeRO traffic per stage and the unit-by-unit overlap of gathers and reduce-scatters.
#include "partitioner/zero_model.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

DpTraffic dp_traffic_bytes(int64_t params, int dp, int zero_stage, int microbatches, bool mixed_precision,
                           bool bf16_reduce, bool full_recompute) {
  TESSERA_CHECK(0 <= zero_stage && zero_stage <= 3, "ZeRO stage {} is not 0..3", zero_stage);
  DpTraffic t;
  if (dp <= 1) return t;
  const double share = static_cast<double>(dp - 1) / dp;  // of a buffer, sent by each ring rank
  const double grads = static_cast<double>(grad_element_bytes(bf16_reduce) * params);
  // Stages 1 and 2 gather the fp32 parameters the optimizer updated; stage 3 gathers units in
  // the compute precision, since only the optimizer needs the fp32 master shard.
  const double weights = static_cast<double>(zero_stage == 3 ? gather_element_bytes(mixed_precision) : 4) * params;
  switch (zero_stage) {
    case 0: t.all_reduce = 2 * share * grads; break;
    case 1:
      t.reduce_scatter = share * grads;
      t.all_gather = share * weights;
      break;
    case 2:
      t.reduce_scatter = microbatches * share * grads;
      t.all_gather = share * weights;
      break;
    case 3:
      t.reduce_scatter = microbatches * share * grads;
      // Before forward and before backward, and before the forward rerun of full recompute.
      t.all_gather = (full_recompute ? 3.0 : 2.0) * microbatches * share * weights;
      break;
  }
  return t;
}

double UnitOverlap::hidden_share() const {
  if (link_busy <= 0) return 1.0;
  double exposed = tail;
  for (double w : wait) exposed += w;
  return std::clamp(1.0 - exposed / link_busy, 0.0, 1.0);
}

UnitOverlap overlap_units(const std::vector<double>& compute, const std::vector<double>& gather,
                          const std::vector<double>& scatter, int prefetch) {
  const size_t n = compute.size();
  TESSERA_CHECK(gather.size() == n && scatter.size() == n, "overlap_units: {} units, {} gathers, {} scatters", n,
                gather.size(), scatter.size());
  TESSERA_CHECK(prefetch >= 0, "overlap_units: prefetch {} < 0", prefetch);
  UnitOverlap o;
  o.wait.assign(n, 0.0);
  std::vector<double> gathered(n, 0.0);  // when each unit's gather completes
  double link = 0;                       // when the link is next free
  double t = 0;                          // when the previous unit's compute ended
  const auto issue_gather = [&](size_t u, double at) {
    link = std::max(link, at) + gather[u];
    gathered[u] = link;
    o.link_busy += gather[u];
  };
  // The first k units are gathered ahead of the pass, in order (FIFO on the link).
  const size_t ahead = std::min(n, static_cast<size_t>(prefetch));
  for (size_t u = 0; u < ahead; ++u) issue_gather(u, 0.0);
  for (size_t i = 0; i < n; ++i) {
    if (prefetch == 0) issue_gather(i, t);  // on demand
    const double start = std::max(t, gathered[i]);
    o.wait[i] = start - t;
    // Unit i starting frees a slot: the gather k ahead goes out now, before i's reduce-scatter.
    if (prefetch > 0 && i + prefetch < n) issue_gather(i + prefetch, start);
    t = start + compute[i];
    if (scatter[i] > 0) {
      link = std::max(link, t) + scatter[i];
      o.link_busy += scatter[i];
    }
  }
  o.tail = std::max(0.0, link - t);
  return o;
}

}  // namespace tessera
