// make_cuda_compute and the CUDA build's answers to cuda_built / cuda_devices_visible.
#include "runtime/compute/cuda_compute.h"

#include "runtime/comm/nccl_communicator.h"
#include "runtime/compute/cuda_backend.h"

namespace tessera {

bool cuda_built() { return true; }

int cuda_devices_visible() { return visible_cuda_devices(); }

int nccl_version_code() { return NcclCommunicator::nccl_version(); }

namespace {

std::unique_ptr<Compute> cuda_compute_on(std::shared_ptr<CudaContext> context, Precision precision) {
  return std::make_unique<Compute>(std::make_unique<CudaBackend>(std::move(context)), PrecisionPolicy{precision});
}

}  // namespace

std::unique_ptr<Compute> make_cuda_compute(int device_index, Precision precision, bool allow_tf32) {
  return cuda_compute_on(start_cuda_device(device_index, allow_tf32), precision);
}

CudaTraining start_cuda_training(int device_index, Precision precision, bool allow_tf32, MpiCommunicator& host,
                                 double timeout_s) {
  std::shared_ptr<CudaContext> context = start_cuda_device(device_index, allow_tf32);
  CudaTraining t;
  t.compute = cuda_compute_on(context, precision);
  t.world = std::make_unique<NcclCommunicator>(host, context, "nccl", timeout_s);
  return t;
}

}  // namespace tessera
