// CudaContext and CudaEvent on the CUDA runtime API.
#include "runtime/device/cuda_context.h"

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"

namespace tessera {

CudaContext::CudaContext(int device_index, bool allow_tf32) : device_index_(device_index) {
  const int visible = visible_cuda_devices();
  TESSERA_CHECK(device_index >= 0 && device_index < visible, "CUDA device {} requested, {} visible", device_index,
                visible);
  TESSERA_CUDA_CHECK(cudaSetDevice(device_index));
  // Non-blocking: the legacy default stream (which some libraries use behind our back) must not
  // serialise with the rank's work.
  TESSERA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  allocator_ = std::make_unique<kernels::cuda::DeviceAllocator>();
  cublas_ = std::make_unique<kernels::cuda::CublasHandle>();
  cublas_->set_allow_tf32(allow_tf32);
}

// No checks: destructors must not throw. Pending work finishes before the stream goes.
CudaContext::~CudaContext() {
  cudaSetDevice(device_index_);
  cudaStreamSynchronize(stream_);
  cublas_.reset();
  allocator_.reset();
  cudaStreamDestroy(stream_);
}

void CudaContext::make_current() const { TESSERA_CUDA_CHECK(cudaSetDevice(device_index_)); }

CudaEvent::CudaEvent() { TESSERA_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }

CudaEvent::~CudaEvent() { cudaEventDestroy(event_); }

void CudaEvent::record(cudaStream_t stream) { TESSERA_CUDA_CHECK(cudaEventRecord(event_, stream)); }

void CudaEvent::make_wait(cudaStream_t stream) const { TESSERA_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }

bool CudaEvent::done() const {
  const cudaError_t status = cudaEventQuery(event_);
  if (status == cudaErrorNotReady) return false;
  TESSERA_CUDA_CHECK(status);
  return true;
}

int visible_cuda_devices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: not an error of the next call
    return 0;
  }
  return count;
}

}  // namespace tessera
