// tessera_cuda_gemm_bench: times square GEMMs through the launchers of kernels/cuda/matmul_cuda.h
// and prints their TFLOP/s: the measured matmul peak that MFU is reported against. A few output
// elements are checked against a host dot product, so a GEMM that silently did nothing cannot
// report a number.
// Usage: tessera_cuda_gemm_bench [size=4096] [iterations=20]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/cast_cuda.h"
#include "kernels/cuda/cublas_handle.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/matmul_cuda.h"

namespace gpu = tessera::kernels::cuda;

namespace {

template <class T>
T* device_alloc(size_t n) {
  void* p = nullptr;
  TESSERA_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
  return static_cast<T*>(p);
}

// Milliseconds per call of fn, after warm-up, timed with events on the stream.
double time_ms(const std::function<void()>& fn, int iterations, cudaStream_t stream) {
  for (int i = 0; i < 3; ++i) fn();
  cudaEvent_t start, stop;
  TESSERA_CUDA_CHECK(cudaEventCreate(&start));
  TESSERA_CUDA_CHECK(cudaEventCreate(&stop));
  TESSERA_CUDA_CHECK(cudaEventRecord(start, stream));
  for (int i = 0; i < iterations; ++i) fn();
  TESSERA_CUDA_CHECK(cudaEventRecord(stop, stream));
  TESSERA_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  TESSERA_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iterations;
}

// C[i, j] of row-major C = A B against a double dot product of the inputs as the GPU saw them;
// returns the largest error relative to sum |a b| (the scale of the rounding).
double spot_check(const std::vector<float>& A, const std::vector<float>& B, float* C_d, int64_t n) {
  double worst = 0.0;
  for (int64_t k = 0; k < 8; ++k) {
    const int64_t i = (k * 977) % n, j = (k * 1931 + 5) % n;
    float c = 0.0f;
    TESSERA_CUDA_CHECK(cudaMemcpy(&c, C_d + i * n + j, sizeof(float), cudaMemcpyDeviceToHost));
    double dot = 0.0, mag = 0.0;
    for (int64_t p = 0; p < n; ++p) {
      dot += double{A[i * n + p]} * B[p * n + j];
      mag += std::abs(double{A[i * n + p]} * B[p * n + j]);
    }
    worst = std::max(worst, std::abs(c - dot) / (mag > 0.0 ? mag : 1.0));
  }
  return worst;
}

float bf16_round(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  bits &= 0xFFFF0000u;
  float y;
  std::memcpy(&y, &bits, 4);
  return y;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 4096;
  const int iterations = argc > 2 ? std::atoi(argv[2]) : 20;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: GEMM benchmark skipped\n");
    return 0;
  }
  try {
    cudaDeviceProp prop{};
    TESSERA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    cudaStream_t stream = nullptr;
    TESSERA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    gpu::CublasHandle handle;

    const size_t elems = static_cast<size_t>(n) * n;
    std::vector<float> A(elems), B(elems);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (float& x : A) x = dist(rng);
    for (float& x : B) x = dist(rng);
    float* A_d = device_alloc<float>(elems);
    float* B_d = device_alloc<float>(elems);
    float* C_d = device_alloc<float>(elems);
    uint16_t* A16_d = device_alloc<uint16_t>(elems);
    uint16_t* B16_d = device_alloc<uint16_t>(elems);
    // On the stream the casts run on, so they read the uploaded data (a plain cudaMemcpy goes
    // to the legacy default stream, which a non-blocking stream does not wait for).
    TESSERA_CUDA_CHECK(
        cudaMemcpyAsync(A_d, A.data(), elems * 4, cudaMemcpyHostToDevice, stream));
    TESSERA_CUDA_CHECK(
        cudaMemcpyAsync(B_d, B.data(), elems * 4, cudaMemcpyHostToDevice, stream));
    gpu::cast_f32_to_bf16(A16_d, A_d, static_cast<int64_t>(elems), stream);
    gpu::cast_f32_to_bf16(B16_d, B_d, static_cast<int64_t>(elems), stream);
    TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream));

    const double flops = 2.0 * static_cast<double>(n) * n * n;
    auto report = [&](const char* what, double ms, double err) {
      std::printf("gemm %lldx%lldx%lld %-28s %8.3f ms  %7.1f TFLOP/s  (spot-check rel err %.1e)\n",
                  static_cast<long long>(n), static_cast<long long>(n), static_cast<long long>(n),
                  what, ms, flops / (ms * 1e-3) / 1e12, err);
    };
    auto fp32 = [&] {
      gpu::gemm(handle, false, false, n, n, n, 1.0f, A_d, n, B_d, n, 0.0f, C_d, n, stream);
    };
    handle.set_allow_tf32(false);
    double ms = time_ms(fp32, iterations, stream);
    report("fp32 (TF32 off)", ms, spot_check(A, B, C_d, n));
    handle.set_allow_tf32(true);
    ms = time_ms(fp32, iterations, stream);
    report("fp32 (TF32 on)", ms, spot_check(A, B, C_d, n));

    std::vector<float> Ar(elems), Br(elems);
    for (size_t i = 0; i < elems; ++i) {
      Ar[i] = bf16_round(A[i]);
      Br[i] = bf16_round(B[i]);
    }
    auto bf16 = [&] {
      gpu::gemm_bf16(handle, false, false, n, n, n, 1.0f, A16_d, n, B16_d, n, 0.0f, C_d, n, stream);
    };
    ms = time_ms(bf16, iterations, stream);
    report("bf16 in, fp32 accumulate/out", ms, spot_check(Ar, Br, C_d, n));
    std::printf("GEMMs through the cublasGemmEx fallback: %lld\n",
                static_cast<long long>(handle.fallback_gemms()));

    cudaFree(A_d);
    cudaFree(B_d);
    cudaFree(C_d);
    cudaFree(A16_d);
    cudaFree(B16_d);
    cudaStreamDestroy(stream);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tessera_cuda_gemm_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
