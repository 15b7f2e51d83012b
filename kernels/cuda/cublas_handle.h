// CublasHandle: the cuBLASLt handle (plus a classic cuBLAS handle for shapes cuBLASLt has no
// algorithm for), the workspace that the GEMM launchers of matmul_cuda.h use, the cache of their
// cuBLASLt plans (descriptors, layouts, chosen algorithm) per GEMM problem, and the numeric
// switches that apply to every GEMM run through it. Opaque handle types are declared here as
// the cuBLAS headers declare them, so including this needs no CUDA headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/cuda/stream.h"

struct cublasContext;
using cublasHandle_t = cublasContext*;
struct cublasLtContext;
using cublasLtHandle_t = cublasLtContext*;

namespace tessera::kernels::cuda {

namespace detail {
class GemmPlanCache;
}  // namespace detail

// The GEMM problems whose cuBLASLt plans a handle keeps, the least recently used dropped first:
// a training run has a handful of shapes, generation with a growing sequence one per step.
constexpr size_t kGemmPlanCapacity = 256;

// One handle per stream that runs GEMMs: every call reuses the same workspace, so two streams
// running GEMMs through one handle at the same time would race on it. Creating a handle
// allocates (cudaMalloc) and is not for the hot path; the GEMMs themselves never synchronise.
class CublasHandle {
 public:
  // cuBLAS's recommendation for Hopper.
  static constexpr size_t kDefaultWorkspaceBytes = size_t{32} << 20;

  explicit CublasHandle(size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;

  cublasLtHandle_t lt() const { return lt_; }
  cublasHandle_t blas() const { return blas_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }

  // fp32 GEMMs on TF32 tensor cores (inputs rounded to a 10-bit mantissa): off by default, so
  // fp32 results match the CPU kernels to float rounding.
  bool allow_tf32() const { return allow_tf32_; }
  void set_allow_tf32(bool allow) { allow_tf32_ = allow; }
  // Bias added in the cuBLASLt epilogue of linear_forward; off: a broadcast kernel writes the
  // bias and the GEMM accumulates onto it (beta = 1), as the CPU kernel does.
  bool fuse_epilogues() const { return fuse_epilogues_; }
  void set_fuse_epilogues(bool fuse) { fuse_epilogues_ = fuse; }

  // GEMMs that cuBLASLt had no algorithm for and that ran through cublasGemmEx instead.
  int64_t fallback_gemms() const { return fallback_gemms_; }
  void count_fallback() { ++fallback_gemms_; }
  // linear_forward calls whose bias went through the cuBLASLt epilogue.
  int64_t fused_bias_gemms() const { return fused_bias_gemms_; }
  void count_fused_bias() { ++fused_bias_gemms_; }

  // The cuBLASLt plans of the GEMM problems seen so far (matmul.cu's private cache), and how
  // many were built and reused: a problem's descriptors and heuristic query are made once.
  detail::GemmPlanCache& plans() { return *plans_; }
  int64_t plans_built() const;
  int64_t plan_hits() const;

 private:
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  bool allow_tf32_ = false;
  bool fuse_epilogues_ = true;
  int64_t fallback_gemms_ = 0;
  int64_t fused_bias_gemms_ = 0;
  std::unique_ptr<detail::GemmPlanCache> plans_;
};

}  // namespace tessera::kernels::cuda
