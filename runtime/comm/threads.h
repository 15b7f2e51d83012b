// How many OpenMP threads a rank uses: the configured count, or the cores of its node shared
// among the ranks on that node.
#pragma once

#include <mpi.h>

namespace tessera {

// Ranks of `comm` on this node (collective over comm).
int ranks_on_this_node(MPI_Comm comm);

// train.threads when > 0, else hardware threads / ranks on the node (at least 1).
int resolve_threads(int configured, int local_ranks);

}  // namespace tessera
