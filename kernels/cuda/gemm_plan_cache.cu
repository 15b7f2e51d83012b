// GemmPlan and GemmPlanCache: builds a GEMM problem's cuBLASLt descriptors once and keeps them.
//
// cuBLAS is column-major. A row-major [r, c] matrix with row stride ld is the column-major
// [c, r] matrix with the same ld, so the row-major C = op(A) op(B) is computed as the
// column-major C^T = op(B)^T op(A)^T: B goes first, A second, and M and N swap.
#include "kernels/cuda/gemm_plan_cache.cuh"

#include <functional>

#include "kernels/cuda/cublas_check.cuh"

namespace tessera::kernels::cuda::detail {

// The CUDA sources are C++17: no defaulted comparison.
bool operator==(const GemmKey& a, const GemmKey& b) {
  return a.trans_a == b.trans_a && a.trans_b == b.trans_b && a.bias == b.bias &&
         a.input_type == b.input_type && a.compute == b.compute && a.M == b.M && a.N == b.N &&
         a.K == b.K && a.lda == b.lda && a.ldb == b.ldb && a.ldc == b.ldc &&
         a.align_a == b.align_a && a.align_b == b.align_b && a.align_c == b.align_c;
}

size_t GemmKeyHash::operator()(const GemmKey& k) const {
  size_t h = 0;
  auto mix = [&h](uint64_t v) {
    h ^= std::hash<uint64_t>{}(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  };
  mix((uint64_t{k.trans_a} << 2) | (uint64_t{k.trans_b} << 1) | uint64_t{k.bias});
  mix(static_cast<uint64_t>(k.input_type));
  mix(static_cast<uint64_t>(k.compute));
  for (const int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc}) mix(static_cast<uint64_t>(v));
  mix((uint64_t{k.align_a} << 32) | k.align_b);
  mix(k.align_c);
  return h;
}

GemmPlan::GemmPlan(cublasLtHandle_t lt, const GemmKey& k, size_t workspace_bytes) {
  cublasLtMatmulPreference_t pref = nullptr;
  try {
    TESSERA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, k.compute, CUDA_R_32F));
    const auto op_first = static_cast<int32_t>(k.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N);  // B
    const auto op_second = static_cast<int32_t>(k.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N);  // A
    TESSERA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA,
                                                        &op_first, sizeof(op_first)));
    TESSERA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB,
                                                        &op_second, sizeof(op_second)));
    if (k.bias) {
      // The bias runs along the rows of the column-major D, i.e. along N: one value per output
      // feature, broadcast over the rows of the row-major output.
      const auto epilogue = static_cast<uint32_t>(CUBLASLT_EPILOGUE_BIAS);
      const auto bias_type = static_cast<int32_t>(CUDA_R_32F);
      TESSERA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                          &epilogue, sizeof(epilogue)));
      TESSERA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
          desc_, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
    }
    auto layout = [](cublasLtMatrixLayout_t* l, cudaDataType_t type, int64_t rows, int64_t cols,
                     int64_t ld) {
      TESSERA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(l, type, static_cast<uint64_t>(rows),
                                                      static_cast<uint64_t>(cols), ld));
    };
    layout(&first_, k.input_type, k.trans_b ? k.K : k.N, k.trans_b ? k.N : k.K, k.ldb);
    layout(&second_, k.input_type, k.trans_a ? k.M : k.K, k.trans_a ? k.K : k.M, k.lda);
    layout(&out_, CUDA_R_32F, k.N, k.M, k.ldc);
    TESSERA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const auto workspace = static_cast<uint64_t>(workspace_bytes);
    TESSERA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
    // cuBLAS's A is our B and the other way round.
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, k.align_b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, k.align_a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, k.align_c},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, k.align_c}};
    for (const auto& [attr, bytes] : alignments) {
      TESSERA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &bytes, sizeof(bytes)));
    }
    cublasLtMatmulHeuristicResult_t result{};
    int count = 0;
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
        lt, desc_, first_, second_, out_, out_, pref, 1, &result, &count);
    if (status != CUBLAS_STATUS_NOT_SUPPORTED) TESSERA_CUBLAS_CHECK(status);
    found_ = status == CUBLAS_STATUS_SUCCESS && count > 0;
    if (found_) algo_ = result.algo;
    cublasLtMatmulPreferenceDestroy(pref);
  } catch (...) {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    release();
    throw;
  }
}

GemmPlan::~GemmPlan() { release(); }

// No checks: called from the destructor, and nothing is left to clean up after a failure.
void GemmPlan::release() {
  if (out_) cublasLtMatrixLayoutDestroy(out_);
  if (second_) cublasLtMatrixLayoutDestroy(second_);
  if (first_) cublasLtMatrixLayoutDestroy(first_);
  if (desc_) cublasLtMatmulDescDestroy(desc_);
  out_ = second_ = first_ = nullptr;
  desc_ = nullptr;
}

const GemmPlan& GemmPlanCache::get(cublasLtHandle_t lt, const GemmKey& key,
                                   size_t workspace_bytes) {
  if (const auto it = index_.find(key); it != index_.end()) {
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    return *it->second->second;
  }
  auto plan = std::make_unique<GemmPlan>(lt, key, workspace_bytes);
  ++built_;
  if (lru_.size() >= kGemmPlanCapacity) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(key, std::move(plan));
  index_.emplace(key, lru_.begin());
  return *lru_.front().second;
}

}  // namespace tessera::kernels::cuda::detail
