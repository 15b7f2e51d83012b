// The runner of the CUDA backend tests: it needs a device (a GPU, or the emulation's one) and
// fails without one, so a run on a machine without a GPU cannot pass by skipping.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "runtime/device/cuda_context.h"

int main(int argc, char** argv) {
  const int devices = tessera::visible_cuda_devices();
  if (devices == 0) {
    std::fprintf(stderr, "no CUDA device visible: the CUDA backend tests need one\n");
    return 1;
  }
  std::printf("CUDA devices visible: %d\n", devices);
  return Catch::Session().run(argc, argv);
}
