// The CPU-only build's side of cuda_compute.h: no CUDA, and a CUDA compute is refused in one line.
#include "runtime/compute/cuda_compute.h"

namespace tessera {

bool cuda_built() { return false; }

int cuda_devices_visible() { return 0; }

int nccl_version_code() { return 0; }

std::unique_ptr<Compute> make_cuda_compute(int, Precision, bool) {
  TESSERA_REQUIRE(false, "train.device = cuda: this tessera was built without CUDA (configure with -DTESSERA_CUDA=ON "
                         "on a machine with the CUDA toolkit)");
  return nullptr;
}

}  // namespace tessera
