// make_cuda_compute and the CUDA build's answers to cuda_built / cuda_devices_visible.
#include "runtime/compute/cuda_compute.h"

#include "runtime/comm/nccl_communicator.h"
#include "runtime/compute/cuda_backend.h"

namespace tessera {

bool cuda_built() { return true; }

int cuda_devices_visible() { return visible_cuda_devices(); }

int nccl_version_code() { return NcclCommunicator::nccl_version(); }

std::unique_ptr<Compute> make_cuda_compute(int device_index, Precision precision, bool allow_tf32) {
  TESSERA_REQUIRE(precision != Precision::FP16,
                  "train.precision = fp16 with train.device = cuda: the CUDA kernels have no fp16 casts or GEMMs yet "
                  "(use bf16)");
  auto backend = std::make_unique<CudaBackend>(start_cuda_device(device_index, allow_tf32));
  return std::make_unique<Compute>(std::move(backend), PrecisionPolicy{precision});
}

}  // namespace tessera
