// The on-machine calibration behind `tessera plan --calibrate` and the planner's default
// machine model: measures this machine (and, under mpirun with >= 2 ranks, the MPI link) and
// writes the calibration cache that partitioner/machine_model.h reads.
#pragma once

#include <optional>
#include <string>

#include "partitioner/cost_model.h"

namespace tessera {

// Measures this machine and writes the cache. Under mpirun with >= 2 ranks (with_mpi) also the
// MPI link. Returns the model on world rank 0, nullopt on the other ranks.
std::optional<ClusterModel> calibrate(const std::string& cache, bool with_mpi, bool verbose);

}  // namespace tessera
