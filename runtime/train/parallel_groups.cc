// A ParallelGrid's communicators as the groups a Trainer uses.
#include "runtime/train/parallel_groups.h"

#include "runtime/comm/parallel_grid.h"

namespace tessera {

ParallelGroups parallel_groups(ParallelGrid& grid, bool sequence_parallel) {
  ParallelGroups g;
  g.world = &grid.world();
  g.tp = TpGroup{&grid.tp(), grid.tp_rank(), grid.tp_size(), sequence_parallel};
  g.dp = &grid.dp();
  g.host_dp = g.dp;
  g.dp_rank = grid.dp_rank();
  g.dp_size = grid.dp_size();
  g.pp = &grid.pp();
  g.pp_rank = grid.pp_rank();
  g.pp_size = grid.pp_size();
  return g;
}

}  // namespace tessera
