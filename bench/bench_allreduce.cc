// All-reduce bandwidth: MpiCommunicator::all_reduce against raw MPI_Allreduce on the same
// buffer and communicator, alternating in one run (median of many repeats per size). A third
// column, raw MPI_Iallreduce + MPI_Wait, separates the cost of MPI's non-blocking path (which
// the communicator needs for its timeouts) from the communicator's own.
// Usage: mpirun -np N bench_allreduce [max_mib (default 64)]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tessera;
  MpiEnvironment env(&argc, &argv);
  try {
    const size_t max_bytes = static_cast<size_t>(argc > 1 ? std::atof(argv[1]) : 64.0) << 20;
    auto world = MpiCommunicator::world(/*timeout_s=*/120.0);
    const MPI_Comm comm = world->mpi_comm();
    const int p = world->size();
    // Bus bandwidth as nccl-tests defines it: bytes each rank moves over its busiest link.
    const double bus_factor = p > 1 ? 2.0 * (p - 1) / p : 0.0;
    if (world->rank() == 0) {
      std::printf("all_reduce (sum, F32) on %d ranks, median of repeats; GB/s is bus bandwidth; ratio = raw time /\n"
                  "tessera time (>= 1: tessera as fast); ratio nb = MPI_Iallreduce+MPI_Wait time / tessera time\n", p);
      std::printf("%10s %6s %10s %9s %10s %9s %10s %7s %9s\n", "bytes", "reps", "raw us", "raw GB/s",
                  "tessera us", "GB/s", "Iallred us", "ratio", "ratio nb");
    }
    for (size_t bytes = 4096; bytes <= max_bytes; bytes *= 4) {
      const int64_t count = static_cast<int64_t>(bytes / sizeof(float));
      Tensor t = Tensor::zeros({count});
      const int reps = static_cast<int>(std::clamp<size_t>((size_t{1} << 28) / bytes, 20, 500));
      std::vector<double> raw, ours, nonblocking;
      for (int rep = -2; rep < reps; ++rep) {  // two untimed warm-up rounds
        double times[3] = {0, 0, 0};
        for (int k = 0; k < 3; ++k) {
          // Rotate the order so no variant always runs first (or on a warmer cache).
          const int variant = (k + rep + 3) % 3;
          MPI_Barrier(comm);
          const double start = now_s();
          if (variant == 0) {
            MPI_Allreduce(MPI_IN_PLACE, t.f32(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, comm);
          } else if (variant == 1) {
            world->all_reduce(t, ReduceOp::Sum);
          } else {
            MPI_Request request;
            MPI_Iallreduce(MPI_IN_PLACE, t.f32(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, comm, &request);
            MPI_Wait(&request, MPI_STATUS_IGNORE);
          }
          times[variant] = now_s() - start;
        }
        if (rep < 0) continue;
        // The slowest rank's time is the collective's time.
        MPI_Allreduce(MPI_IN_PLACE, times, 3, MPI_DOUBLE, MPI_MAX, comm);
        raw.push_back(times[0]);
        ours.push_back(times[1]);
        nonblocking.push_back(times[2]);
      }
      const double raw_s = median(raw), ours_s = median(ours), nb_s = median(nonblocking);
      if (world->rank() == 0) {
        std::printf("%10zu %6d %10.1f %9.3f %10.1f %9.3f %10.1f %7.3f %9.3f\n", bytes, reps, raw_s * 1e6,
                    bus_factor * bytes / raw_s / 1e9, ours_s * 1e6, bus_factor * bytes / ours_s / 1e9, nb_s * 1e6,
                    raw_s / ours_s, nb_s / ours_s);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce: %s\n", e.what());
    abort_job(1);
  }
  return 0;
}
