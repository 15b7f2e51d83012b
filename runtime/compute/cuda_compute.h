// The CUDA compute of a run, as far as code that must build with or without CUDA sees it. Each
// build links exactly one definition (CMake's tessera_device_runtime picks it): the CUDA one
// (cuda_compute.cc, in tessera_runtime_cuda or its emulated twin) or the CPU-only one
// (no_cuda_compute.cc), which reports no CUDA and refuses to make a CUDA compute. So the choice
// is made by the build, not by #ifdefs in the code that calls these.
#pragma once

#include <memory>

#include "runtime/comm/communicator.h"
#include "runtime/compute/compute.h"

namespace tessera {

class MpiCommunicator;

// Whether this build has the CUDA backend.
bool cuda_built();
// CUDA devices this process can see (0 without CUDA, a driver or a device).
int cuda_devices_visible();
// The NCCL library's version code (ncclGetVersion, e.g. 22809 for 2.28.9); 0 without CUDA.
int nccl_version_code();
// Starts this rank's CUDA runtime on `device_index` (its device tensors come from there from now
// on) and returns the Compute over CudaBackend.
std::unique_ptr<Compute> make_cuda_compute(int device_index, Precision precision, bool allow_tf32);

// What a trainer on a GPU runs on: the Compute of make_cuda_compute, and an NCCL communicator
// over the ranks of `host` on the same device, the parent its tp/dp/pp groups are split from
// (ncclCommSplit). Collective over `host`.
struct CudaTraining {
  std::shared_ptr<Compute> compute;
  std::unique_ptr<Communicator> world;
};
CudaTraining start_cuda_training(int device_index, Precision precision, bool allow_tf32, MpiCommunicator& host,
                                 double timeout_s);

}  // namespace tessera
