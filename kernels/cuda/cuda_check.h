// TESSERA_CUDA_CHECK: throws tessera::Error naming the failing CUDA call, file and line.
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

#define TESSERA_CUDA_CHECK(expr)                                                        \
  do {                                                                                  \
    const cudaError_t tessera_cuda_err = (expr);                                        \
    if (tessera_cuda_err != cudaSuccess) {                                              \
      ::tessera::detail::throw_check_failure(#expr, __FILE__, __LINE__,                 \
                                             cudaGetErrorString(tessera_cuda_err));     \
    }                                                                                   \
  } while (0)
