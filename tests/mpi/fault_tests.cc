// tessera_mpi_fault_tests MODE: jobs that must fail, run by expect_failure.cmake. One rank
// stalls (or dies) and the others must end the job within the timeout with a message naming
// the missing peer, the group and the step -- exactly what the CLI does: print, abort_job.
//   stall_collective  np 3: world rank 1 never enters an all_reduce on 'world'
//   stall_group       np 4, tp 2: world rank 3 never enters an all_reduce on its 'dp' group
//   stall_recv        np 2: world rank 1 never sends what rank 0 receives
//   kill              np 3: world rank 1 exits (_exit(1)) before an all_reduce
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/parallel_grid.h"

namespace {

constexpr double kTimeout = 1.0;

// Sleeps far past the timeout; ends early if mpirun is gone (never outlive a killed job).
void stall() {
  const pid_t parent = getppid();
  for (int i = 0; i < 300 && getppid() == parent; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fprintf(stderr, "stalled rank was not ended by the job\n");
  std::_Exit(3);
}

void run(const std::string& mode, int world_rank) {
  using namespace tessera;
  auto world = MpiCommunicator::world(mode == "kill" ? 5.0 : kTimeout);
  world->set_step(7);
  world->barrier();  // everyone is up; from here one rank misbehaves
  Tensor t = Tensor::full({1000}, 1.0f);
  if (mode == "stall_collective") {
    if (world_rank == 1) stall();
    world->all_reduce(t, ReduceOp::Sum);
  } else if (mode == "stall_group") {
    ParallelGrid grid(*world, /*tp=*/2, /*pp=*/1);
    grid.set_step(7);
    // The dp group keeps the 1 s timeout; the world barrier after it waits longer, so the
    // message under test (from world rank 1, rank 3's dp peer) is the one that ends the job.
    world->set_timeout(10.0);
    if (world_rank == 3) stall();
    grid.dp().all_reduce(t, ReduceOp::Avg);
    world->barrier();
  } else if (mode == "stall_recv") {
    if (world_rank == 1) stall();
    world->recv(t, 1, 5)->wait();
  } else if (mode == "kill") {
    if (world_rank == 1) std::_Exit(1);
    world->all_reduce(t, ReduceOp::Sum);
  } else {
    throw Error("unknown mode '" + mode + "'");
  }
}

}  // namespace

int main(int argc, char** argv) {
  tessera::MpiEnvironment env(&argc, &argv);
  const int world_rank = env.world_rank();
  try {
    run(argc > 1 ? argv[1] : "", world_rank);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] error: %s\n", world_rank, e.what());
    tessera::abort_job(1);
  }
  std::fprintf(stderr, "[rank %d] finished without the expected error\n", world_rank);
  tessera::abort_job(2);
}
