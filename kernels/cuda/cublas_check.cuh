// TESSERA_CUBLAS_CHECK: throws tessera::Error naming the failing cuBLAS/cuBLASLt call, file and
// line. Included by .cu files only.
#pragma once

#include <cublasLt.h>

#include "core/error.h"

#define TESSERA_CUBLAS_CHECK(expr)                                                      \
  do {                                                                                  \
    const cublasStatus_t tessera_cublas_status = (expr);                                \
    if (tessera_cublas_status != CUBLAS_STATUS_SUCCESS) {                               \
      ::tessera::detail::throw_check_failure(                                           \
          #expr, __FILE__, __LINE__, cublasLtGetStatusString(tessera_cublas_status));   \
    }                                                                                   \
  } while (0)
