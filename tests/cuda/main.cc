// The test runner of tessera_cuda_tests. It asks CUDA for a device first: without one it prints
// one skip message, every [cuda] case returns before its first assertion (TESSERA_REQUIRE_GPU),
// and the run exits 0. The [host] cases (the allocator's policy on a host backend) run anyway.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cstdio>

#include "tests/cuda/cuda_test_util.h"

namespace tessera::cuda_testing {
namespace {
bool g_device_available = false;
}  // namespace

bool device_available() { return g_device_available; }

}  // namespace tessera::cuda_testing

int main(int argc, char** argv) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaSuccess && count > 0) {
    tessera::cuda_testing::g_device_available = true;
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
      std::printf("CUDA device 0: %s (sm_%d%d, %d SMs, %.1f GiB)\n", prop.name, prop.major,
                  prop.minor, prop.multiProcessorCount,
                  static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
    }
  } else {
    std::printf("no CUDA device: [cuda] tests skipped\n");
    std::printf("  (cudaGetDeviceCount: %s, %d devices)\n",
                err == cudaSuccess ? "no error" : cudaGetErrorString(err), count);
    (void)cudaGetLastError();
  }
  std::fflush(stdout);
  return Catch::Session().run(argc, argv);
}
