// Per-call algorithm hints for Open MPI's non-blocking collectives (libnbc), set through
// the MPI tool interface. A no-op on other MPI libraries or when the user set the MCA
// parameter explicitly.
#pragma once

namespace tessera {

// Call right before MPI_Iallreduce on a communicator of `group_size` ranks. libnbc picks a
// reduce+broadcast tree for fewer than 4 ranks, which moves every byte twice and measured
// 2x slower than the blocking MPI_Allreduce at 2 ranks; the ring algorithm matches it. For 4
// or more ranks libnbc's own choice (ring for large messages, tree for small) is kept.
void hint_iallreduce_algorithm(int group_size);

}  // namespace tessera
