// GemmPlanCache: the cuBLASLt descriptors, layouts and heuristic choice of one GEMM problem,
// built once per (shape, leading dimensions, dtypes, transposes, compute type, epilogue,
// pointer alignments) and reused by every later call of the same problem. Owned by a
// CublasHandle (one per stream), so it needs no locking. Private to the GEMM launchers
// (matmul.cu, cublas_handle.cu); needs the cuBLASLt headers.
#pragma once

#include <cublasLt.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>

#include "kernels/cuda/cublas_handle.h"

namespace tessera::kernels::cuda::detail {

// Everything the descriptors and the heuristic's answer depend on. The bias pointer is not part
// of it: a plan with the bias epilogue gets the pointer set before each call.
struct GemmKey {
  bool trans_a, trans_b, bias;
  cudaDataType_t input_type;
  cublasComputeType_t compute;
  int64_t M, N, K, lda, ldb, ldc;
  uint32_t align_a, align_b, align_c;  // bytes, as the heuristic was told
};
bool operator==(const GemmKey& a, const GemmKey& b);

struct GemmKeyHash {
  size_t operator()(const GemmKey& k) const;
};

// The RAII owners of one problem's cuBLASLt objects and the algorithm the heuristic chose;
// `found` is false when cuBLASLt has none (the caller then falls back to cublasGemmEx, and the
// negative answer is cached too).
class GemmPlan {
 public:
  GemmPlan(cublasLtHandle_t lt, const GemmKey& key, size_t workspace_bytes);
  ~GemmPlan();
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;

  bool found() const { return found_; }
  cublasLtMatmulDesc_t desc() const { return desc_; }
  cublasLtMatrixLayout_t first() const { return first_; }   // B's layout (cuBLAS's A)
  cublasLtMatrixLayout_t second() const { return second_; }  // A's layout (cuBLAS's B)
  cublasLtMatrixLayout_t out() const { return out_; }
  const cublasLtMatmulAlgo_t* algo() const { return &algo_; }

 private:
  void release();

  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t first_ = nullptr, second_ = nullptr, out_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  bool found_ = false;
};

// At most kGemmPlanCapacity (cublas_handle.h) plans, the least recently used dropped first.
class GemmPlanCache {
 public:
  // The plan for key, built (descriptors created, heuristic queried) on first use.
  const GemmPlan& get(cublasLtHandle_t lt, const GemmKey& key, size_t workspace_bytes);
  int64_t built() const { return built_; }
  int64_t hits() const { return hits_; }
  size_t size() const { return lru_.size(); }

 private:
  using Entry = std::pair<GemmKey, std::unique_ptr<GemmPlan>>;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<GemmKey, std::list<Entry>::iterator, GemmKeyHash> index_;
  int64_t built_ = 0;
  int64_t hits_ = 0;
};

}  // namespace tessera::kernels::cuda::detail
