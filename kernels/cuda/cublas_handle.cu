// CublasHandle: creates the cuBLASLt and cuBLAS handles and the shared workspace.
#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/cuda/cublas_check.cuh"
#include "kernels/cuda/cublas_handle.h"
#include "kernels/cuda/cuda_check.h"

namespace tessera::kernels::cuda {

CublasHandle::CublasHandle(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  // Released in reverse if a later step throws (the destructor does not run then).
  TESSERA_CUBLAS_CHECK(cublasLtCreate(&lt_));
  try {
    TESSERA_CUBLAS_CHECK(cublasCreate(&blas_));
    if (workspace_bytes_ > 0) TESSERA_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
  } catch (...) {
    if (blas_) cublasDestroy(blas_);
    cublasLtDestroy(lt_);
    throw;
  }
}

// No checks: a destructor must not throw, and a failure here leaves nothing to clean up.
CublasHandle::~CublasHandle() {
  if (workspace_) cudaFree(workspace_);
  if (blas_) cublasDestroy(blas_);
  if (lt_) cublasLtDestroy(lt_);
}

}  // namespace tessera::kernels::cuda
