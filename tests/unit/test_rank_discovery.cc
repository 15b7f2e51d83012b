// Rank discovery from launcher environments, without MPI: a map stands in for the process
// environment.
#include <catch2/catch.hpp>

#include <map>

#include "runtime/comm/rank_discovery.h"
#include "core/error.h"

using tessera::InputError;
using tessera::RankInfo;

namespace {

tessera::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    tessera::discover_rank(env_of(vars));
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("rank discovery without a launcher is rank 0 of 1", "[rank]") {
  const RankInfo info = tessera::discover_rank(env_of({}));
  CHECK(info.source == "none");
  CHECK(info.rank == 0);
  CHECK(info.world_size == 1);
  CHECK_FALSE(info.local_rank_known);
}

TEST_CASE("rank discovery reads each launcher", "[rank]") {
  struct Case {
    std::map<std::string, std::string> vars;
    std::string source;
  };
  const Case cases[] = {
      {{{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}}, "OpenMPI"},
      {{{"PMI_RANK", "3"}, {"PMI_SIZE", "8"}, {"MPI_LOCALRANKID", "1"}}, "PMI"},
      {{{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}}, "Slurm"},
      {{{"SLURM_PROCID", "3"}, {"SLURM_NPROCS", "8"}, {"SLURM_LOCALID", "1"}}, "Slurm"},
      {{{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}}, "torchrun"},
  };
  for (const Case& c : cases) {
    INFO(c.source);
    const RankInfo info = tessera::discover_rank(env_of(c.vars));
    CHECK(info.source == c.source);
    CHECK(info.rank == 3);
    CHECK(info.world_size == 8);
    CHECK(info.local_rank == 1);
    CHECK(info.local_rank_known);
  }
}

TEST_CASE("rank discovery prefers the MPI launcher over the Slurm allocation", "[rank]") {
  // mpirun inside salloc: SLURM_* describe the batch step, OMPI_* this rank.
  const RankInfo info = tessera::discover_rank(env_of({{"SLURM_PROCID", "0"},
                                                       {"SLURM_NTASKS", "1"},
                                                       {"RANK", "7"},
                                                       {"WORLD_SIZE", "9"},
                                                       {"OMPI_COMM_WORLD_RANK", "2"},
                                                       {"OMPI_COMM_WORLD_SIZE", "4"}}));
  CHECK(info.source == "OpenMPI");
  CHECK(info.rank == 2);
  CHECK(info.world_size == 4);
  CHECK_FALSE(info.local_rank_known);
  CHECK(info.evidence == "OMPI_COMM_WORLD_RANK=2, OMPI_COMM_WORLD_SIZE=4");
}

TEST_CASE("rank discovery skips partial Slurm and torchrun variables", "[rank]") {
  // A batch script sets SLURM_PROCID without a task count; a stray RANK is not torchrun.
  const RankInfo info = tessera::discover_rank(env_of({{"SLURM_PROCID", "0"}, {"RANK", "5"}}));
  CHECK(info.source == "none");
  CHECK(info.world_size == 1);
}

TEST_CASE("rank discovery rejects bad values with the variable name", "[rank]") {
  CHECK(error_of({{"OMPI_COMM_WORLD_RANK", "1"}}) ==
        "incomplete OpenMPI environment: OMPI_COMM_WORLD_RANK is set but OMPI_COMM_WORLD_SIZE is not");
  CHECK(error_of({{"PMI_SIZE", "4"}}) == "incomplete PMI environment: PMI_SIZE is set but PMI_RANK is not");
  CHECK(error_of({{"PMI_RANK", "x1"}, {"PMI_SIZE", "4"}}) == "environment variable PMI_RANK='x1' is not an integer");
  CHECK(error_of({{"PMI_RANK", "1 "}, {"PMI_SIZE", "4"}}) == "environment variable PMI_RANK='1 ' is not an integer");
  CHECK(error_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}}) ==
        "torchrun environment: RANK=4, WORLD_SIZE=4 must be in [0, 4)");
  CHECK(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "0"}}) ==
        "Slurm environment: SLURM_NTASKS=0 must be >= 1");
  CHECK(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "-1"}}) ==
        "Slurm environment: SLURM_LOCALID=-1 must be in [0, 2)");
}

TEST_CASE("rank discovery check against MPI names both sources", "[rank]") {
  RankInfo info = tessera::discover_rank(env_of({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}}));
  CHECK_NOTHROW(tessera::check_rank_against_mpi(info, 3, 4));
  try {
    tessera::check_rank_against_mpi(info, 0, 1);
    FAIL("expected a mismatch");
  } catch (const InputError& e) {
    const std::string message = e.what();
    CHECK_THAT(message, Catch::Contains("OpenMPI environment (OMPI_COMM_WORLD_RANK=3, OMPI_COMM_WORLD_SIZE=4) says "
                                        "rank 3 of 4"));
    CHECK_THAT(message, Catch::Contains("MPI_Comm_rank/MPI_Comm_size on MPI_COMM_WORLD say rank 0 of 1"));
  }
  // Without launcher variables there is nothing to disagree with.
  CHECK_NOTHROW(tessera::check_rank_against_mpi(RankInfo{}, 2, 4));
}
