// Threads per rank.
#include "runtime/comm/threads.h"

#include <algorithm>
#include <thread>

#include "runtime/comm/mpi_check.h"

namespace tessera {

int ranks_on_this_node(MPI_Comm comm) {
  MPI_Comm node;
  TESSERA_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  int size = 1;
  const int rc = MPI_Comm_size(node, &size);
  TESSERA_MPI_CHECK(MPI_Comm_free(&node), "MPI_Comm_free");
  TESSERA_MPI_CHECK(rc, "MPI_Comm_size");
  return size;
}

int resolve_threads(int configured, int local_ranks) {
  if (configured > 0) return configured;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, local_ranks));
}

}  // namespace tessera
