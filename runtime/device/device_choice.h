// Which GPU a rank trains on with train.device = cuda, and the refusals that must come before any
// work: one GPU per rank, the rank's index among the ranks of its node (so ranks of one node never
// share a GPU, and the choice needs no communication), unless NCCL_MULTI_RANK_GPU_ENABLE=1 with
// NCCL >= 2.30, which lets ranks share one (the device check's two ranks on one GPU). Pure but
// for those environment variables, so the refusals are tested without a GPU.
#pragma once

#include <string>

namespace tessera {

// What the program's build and machine offer (runtime/compute/cuda_compute.h answers these in a
// program that links the device runtime; the defaults are a build without CUDA).
struct CudaRuntimeFacts {
  bool built = false;
  int visible_devices = 0;
  int nccl_version = 0;
};

struct DeviceChoiceInput {
  bool cuda_built = false;
  int visible_devices = 0;  // CUDA devices this process sees
  int rank = 0;             // world rank, for the message
  int local_rank = 0;       // rank among the processes of this node
  int local_ranks = 1;      // processes on this node
  int nccl_version = 0;     // ncclGetVersion of the library loaded at run time (0: none)
};

// The oldest NCCL the communicator runs on: ncclCommSplit came in 2.18. The header we build
// against may be newer than the libnccl.so.2 a machine loads, so this is checked at run time.
constexpr int kMinNcclVersion = 21800;

// The CUDA device index for this rank; throws InputError with one line saying which rule failed:
// a build without CUDA, no GPU visible, more ranks on the node than GPUs, or an NCCL too old.
int choose_cuda_device(const DeviceChoiceInput& in);
inline int choose_cuda_device(const CudaRuntimeFacts& cuda, int rank, int local_rank, int local_ranks) {
  return choose_cuda_device({cuda.built, cuda.visible_devices, rank, local_rank, local_ranks, cuda.nccl_version});
}

}  // namespace tessera
