// The CUDA runtime calls that the runtime's device layer (runtime/device/cuda_*.cc) makes beyond
// the kernels' own, for the emulated build: device selection, events and pinned host memory.
// Work completes when it is enqueued in the emulation (emu_runtime.cc), so an event is always
// complete and waiting on one orders nothing that is not already ordered.
#include <cuda_runtime.h>

#include <cstdlib>

extern "C" {

cudaError_t cudaSetDevice(int device) {
  int count = 0;
  cudaGetDeviceCount(&count);
  return device >= 0 && device < count ? cudaSuccess : cudaErrorInvalidDevice;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  *event = reinterpret_cast<cudaEvent_t>(std::malloc(1));
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  std::free(event);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned int) { return cudaSuccess; }
cudaError_t cudaMallocHost(void** ptr, size_t size) {
  *ptr = std::malloc(size > 0 ? size : 1);
  return *ptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

}  // extern "C"
