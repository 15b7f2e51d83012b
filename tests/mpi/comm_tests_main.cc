// tessera_mpi_comm_tests [comm|grid|all]: the multi-rank communicator and grid tests.
// Run under mpirun; exits non-zero on any failure on any rank.
#include <cstring>

#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "tests/mpi/mpi_test_util.h"

namespace tessera::mpitest {
void run_comm_suite(Harness& h, MpiCommunicator& world);
void run_grid_suite(Harness& h, MpiCommunicator& world);
void run_agreement_suite(Harness& h, MpiCommunicator& world);
}  // namespace tessera::mpitest

int main(int argc, char** argv) {
  using namespace tessera;
  MpiEnvironment env(&argc, &argv);
  const char* suite = argc > 1 ? argv[1] : "all";
  int code = 0;
  try {
    // Short enough that a broken collective fails the test long before CTest's timeout.
    auto world = MpiCommunicator::world(/*timeout_s=*/20.0);
    mpitest::Harness h(*world, suite);
    if (std::strcmp(suite, "comm") == 0 || std::strcmp(suite, "all") == 0) {
      mpitest::run_comm_suite(h, *world);
      mpitest::run_agreement_suite(h, *world);
    }
    if (std::strcmp(suite, "grid") == 0 || std::strcmp(suite, "all") == 0) mpitest::run_grid_suite(h, *world);
    code = h.finish();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] ERROR: %s\n", env.world_rank(), e.what());
    abort_job(1);
  }
  return code;
}
