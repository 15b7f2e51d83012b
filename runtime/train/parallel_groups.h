// The communicators a Trainer uses (tp, dp, pp and the world), borrowed from their owner,
// normally a ParallelGrid; a default-constructed one is a single process without MPI.
#pragma once

#include "runtime/comm/communicator.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

// The communicators a trainer uses, owned by the caller (normally a ParallelGrid).
struct ParallelGroups {
  Communicator* world = nullptr;  // null for a single process without MPI
  TpGroup tp;
  Communicator* dp = nullptr;  // null when dp size is 1
  int dp_rank = 0, dp_size = 1;
  // The same dp ranks over MPI, on host tensors: local SGD / DiLoCo's outer sync, which keeps its
  // state on the host and crosses the slow link there. dp itself on the CPU; on a GPU, where dp
  // is an NCCL group, the MPI grid's.
  Communicator* host_dp = nullptr;
  Communicator* pp = nullptr;  // null when pp size is 1
  int pp_rank = 0, pp_size = 1;
  bool is_logging_rank() const { return world == nullptr || world->rank() == 0; }
};

class ParallelGrid;
// The groups of a ParallelGrid (which must outlive the trainer).
ParallelGroups parallel_groups(ParallelGrid& grid, bool sequence_parallel);

}  // namespace tessera
