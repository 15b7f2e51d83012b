// Rank discovery from launcher environment variables, and the check against MPI.
#include "runtime/comm/rank_discovery.h"

#include <mpi.h>

#include <charconv>
#include <cstdlib>

#include "runtime/comm/mpi_check.h"
#include "core/error.h"

namespace tessera {
namespace {

struct Launcher {
  const char* source;
  const char* rank_var;
  const char* size_var;
  const char* size_fallback_var;  // nullptr: none
  const char* local_var;
  bool partial_is_error;
};

constexpr Launcher kLaunchers[] = {
    {"OpenMPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", nullptr, "OMPI_COMM_WORLD_LOCAL_RANK", true},
    {"PMI", "PMI_RANK", "PMI_SIZE", nullptr, "MPI_LOCALRANKID", true},
    {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_LOCALID", false},
    {"torchrun", "RANK", "WORLD_SIZE", nullptr, "LOCAL_RANK", false},
};

int parse_int(const std::string& name, const std::string& value) {
  int result = 0;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, result);
  TESSERA_REQUIRE(ec == std::errc() && ptr == end && !value.empty(),
                  "environment variable {}='{}' is not an integer", name, value);
  return result;
}

}  // namespace

RankInfo discover_rank(const EnvLookup& env) {
  for (const Launcher& l : kLaunchers) {
    const auto rank = env(l.rank_var);
    std::string size_var = l.size_var;
    auto size = env(size_var);
    if (!size && l.size_fallback_var != nullptr) {
      size_var = l.size_fallback_var;
      size = env(size_var);
    }
    if (!rank && !size) continue;
    if (!rank || !size) {
      if (!l.partial_is_error) continue;
      throw InputError(fmt::format("incomplete {} environment: {} is set but {} is not", l.source,
                                   rank ? l.rank_var : l.size_var, rank ? l.size_var : l.rank_var));
    }
    RankInfo info;
    info.source = l.source;
    info.rank = parse_int(l.rank_var, *rank);
    info.world_size = parse_int(size_var, *size);
    info.evidence = fmt::format("{}={}, {}={}", l.rank_var, *rank, size_var, *size);
    TESSERA_REQUIRE(info.world_size >= 1, "{} environment: {}={} must be >= 1", l.source, size_var, *size);
    TESSERA_REQUIRE(info.rank >= 0 && info.rank < info.world_size, "{} environment: {} must be in [0, {})",
                    l.source, info.evidence, info.world_size);
    if (const auto local = env(l.local_var)) {
      info.local_rank = parse_int(l.local_var, *local);
      info.local_rank_known = true;
      TESSERA_REQUIRE(info.local_rank >= 0 && info.local_rank < info.world_size,
                      "{} environment: {}={} must be in [0, {})", l.source, l.local_var, *local, info.world_size);
    }
    return info;
  }
  return RankInfo{};
}

RankInfo discover_rank_from_environment() {
  return discover_rank([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

void check_rank_against_mpi(const RankInfo& info, int mpi_rank, int mpi_size) {
  if (info.source == "none") return;
  TESSERA_REQUIRE(info.rank == mpi_rank && info.world_size == mpi_size,
                  "rank mismatch: the {} environment ({}) says rank {} of {}, but MPI_Comm_rank/MPI_Comm_size on "
                  "MPI_COMM_WORLD say rank {} of {}; start the job with the launcher of the MPI library Tessera "
                  "was built with (mpirun, or srun with a matching --mpi plugin)",
                  info.source, info.evidence, info.rank, info.world_size, mpi_rank, mpi_size);
}

RankInfo discover_rank_with_mpi() {
  int mpi_rank = 0;
  int mpi_size = 1;
  TESSERA_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank), "MPI_Comm_rank");
  TESSERA_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &mpi_size), "MPI_Comm_size");
  RankInfo info = discover_rank_from_environment();
  check_rank_against_mpi(info, mpi_rank, mpi_size);
  info.rank = mpi_rank;
  info.world_size = mpi_size;
  if (!info.local_rank_known) {
    MPI_Comm node;
    TESSERA_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, mpi_rank, MPI_INFO_NULL, &node),
                      "MPI_Comm_split_type");
    const int rc = MPI_Comm_rank(node, &info.local_rank);
    TESSERA_MPI_CHECK(MPI_Comm_free(&node), "MPI_Comm_free");
    TESSERA_MPI_CHECK(rc, "MPI_Comm_rank");
    info.local_rank_known = true;
  }
  return info;
}

}  // namespace tessera
