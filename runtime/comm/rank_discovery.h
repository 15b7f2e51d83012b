// Rank discovery: which rank this process is, from the launcher's environment variables
// (Open MPI, PMI, Slurm or torchrun), checked against what MPI itself says.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace tessera {

struct RankInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;             // rank among the processes on this node
  bool local_rank_known = false;  // false: no local-rank variable was set (local_rank is 0)
  // "OpenMPI", "PMI", "Slurm", "torchrun", or "none" (started without a launcher).
  std::string source = "none";
  // The variables read, for messages: "OMPI_COMM_WORLD_RANK=3, OMPI_COMM_WORLD_SIZE=4".
  std::string evidence;
};

// Looks up an environment variable; nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Pure: reads the first launcher whose variables are set, in priority order
//   Open MPI  OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
//   PMI       PMI_RANK, PMI_SIZE, MPI_LOCALRANKID              (MPICH / Intel MPI)
//   Slurm     SLURM_PROCID, SLURM_NTASKS (or SLURM_NPROCS), SLURM_LOCALID
//   torchrun  RANK, WORLD_SIZE, LOCAL_RANK
// The MPI launchers come first because mpirun inside a Slurm allocation inherits the
// allocation's SLURM_* variables, which describe the batch step rather than this rank.
// Throws InputError for values that are not integers or out of range, and for an Open MPI
// or PMI rank without its size (those variables only come from their launchers). A Slurm or
// torchrun rank without a size is ignored: a batch script alone sets SLURM_PROCID.
RankInfo discover_rank(const EnvLookup& env);

// discover_rank over the process environment (std::getenv).
RankInfo discover_rank_from_environment();

// Pure: throws InputError when the environment and MPI_Comm_rank/size disagree, naming both
// sources and their values. With source "none" there is nothing to compare.
void check_rank_against_mpi(const RankInfo& info, int mpi_rank, int mpi_size);

// The process's RankInfo: the environment checked against MPI_COMM_WORLD (needs an active
// MpiEnvironment). An unknown local rank is taken from MPI's shared-memory split (then the
// call is collective over MPI_COMM_WORLD). With no launcher variables, rank and size come
// from MPI.
RankInfo discover_rank_with_mpi();

}  // namespace tessera
