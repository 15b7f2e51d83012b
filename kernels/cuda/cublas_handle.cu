// CublasHandle: creates the cuBLASLt and cuBLAS handles, the shared workspace and the plan cache.
#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/cuda/cublas_check.cuh"
#include "kernels/cuda/cublas_handle.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_plan_cache.cuh"

namespace tessera::kernels::cuda {

CublasHandle::CublasHandle(size_t workspace_bytes)
    : workspace_bytes_(workspace_bytes), plans_(std::make_unique<detail::GemmPlanCache>()) {
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

// No checks: a destructor must not throw, and a failure here leaves nothing to clean up. The
// plans go first: their descriptors belong to the cuBLASLt handle.
CublasHandle::~CublasHandle() {
  plans_.reset();
  if (workspace_) cudaFree(workspace_);
  if (blas_) cublasDestroy(blas_);
  if (lt_) cublasLtDestroy(lt_);
}

int64_t CublasHandle::plans_built() const { return plans_->built(); }
int64_t CublasHandle::plan_hits() const { return plans_->hits(); }

}  // namespace tessera::kernels::cuda
