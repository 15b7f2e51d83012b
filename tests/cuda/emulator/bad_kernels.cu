// Deliberately wrong kernels (and correct controls) for the emulator's own tests; see
// bad_kernels.h. Translated by translate_cu.py like the kernels of kernels/cuda/.
#include "tests/cuda/emulator/bad_kernels.h"

namespace emu_checks {
namespace {

__global__ void scale_kernel(float* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= 2.0f;
}

__global__ void dynamic_shared_kernel(float* out, int count) {
  extern __shared__ float buffer[];
  for (int i = threadIdx.x; i < count; i += blockDim.x) buffer[i] = 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0.0f;
    for (int i = 0; i < count; ++i) sum += buffer[i];
    out[0] = sum;
  }
}

__global__ void static_and_dynamic_shared_kernel(float* out) {
  __shared__ float table[10240];  // 40 KiB
  extern __shared__ float extra[];
  if (threadIdx.x == 0) {
    table[0] = 1.0f;
    extra[0] = 2.0f;
    out[0] = table[0] + extra[0];
  }
}

__global__ void stale_static_shared_kernel(float* out) {
  __shared__ float cell;
  if (threadIdx.x == 0) {
    out[blockIdx.x] = cell;  // the bug: read before this block wrote it
    cell = static_cast<float>(blockIdx.x);
  }
}

__global__ void missing_barrier_kernel(float* out) {
  extern __shared__ float slots[];
  slots[threadIdx.x] = static_cast<float>(threadIdx.x);
  // The bug: no __syncthreads() here.
  out[threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

__global__ void chain_kernel(float* x) {
  if (threadIdx.x == 0) x[blockIdx.x] = blockIdx.x == 0 ? 0.0f : x[blockIdx.x - 1] + 1.0f;
}

}  // namespace

void scale(float* x, int n) { scale_kernel<<<(n + 127) / 128, 128>>>(x, n); }

void dynamic_shared(float* out, size_t bytes) {
  dynamic_shared_kernel<<<1, 128, bytes>>>(out, static_cast<int>(bytes / sizeof(float)));
}

cudaError_t opt_in_dynamic_shared(int bytes) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(dynamic_shared_kernel),
                              cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

void static_and_dynamic_shared(float* out, size_t dynamic_bytes) {
  static_and_dynamic_shared_kernel<<<1, 32, dynamic_bytes>>>(out);
}

void stale_static_shared(float* out, int blocks) {
  stale_static_shared_kernel<<<blocks, 32>>>(out);
}

void missing_barrier(float* out, int threads) {
  missing_barrier_kernel<<<1, threads, threads * sizeof(float)>>>(out);
}

void chain_across_blocks(float* x, int blocks) { chain_kernel<<<blocks, 32>>>(x); }

}  // namespace emu_checks
