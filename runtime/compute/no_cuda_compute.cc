// The CPU-only build's side of cuda_compute.h: no CUDA, and a CUDA compute is refused in one line.
#include "runtime/compute/cuda_compute.h"

namespace tessera {

bool cuda_built() { return false; }

int cuda_devices_visible() { return 0; }

int nccl_version_code() { return 0; }

namespace {

constexpr const char* kNoCuda =
    "train.device = cuda: this tessera was built without CUDA (configure with -DTESSERA_CUDA=ON on a machine with the "
    "CUDA toolkit)";

}  // namespace

std::unique_ptr<Compute> make_cuda_compute(int, Precision, bool) { throw InputError(kNoCuda); }

CudaTraining start_cuda_training(int, Precision, bool, MpiCommunicator&, double) { throw InputError(kNoCuda); }

}  // namespace tessera
