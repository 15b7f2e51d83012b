// A stand-in for the cuBLASLt (and classic cuBLAS GemmEx) calls that kernels/cuda/matmul.cu
// makes, on a CPU GEMM, so the real matmul.cu runs in the emulated build. It honours what
// matmul.cu asks for — column-major layouts with leading dimensions, transposes, alpha/beta,
// fp32 / bf16 / fp16 inputs, TF32 compute (inputs rounded to 10 mantissa bits), the BIAS epilogue
// — and answers CUBLAS_STATUS_NOT_SUPPORTED for any descriptor attribute or epilogue it does not
// implement, so a new use in matmul.cu fails here instead of being silently ignored. Sums are
// accumulated in double: the emulation checks layouts and epilogues, not cuBLAS's rounding.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

namespace {

struct Desc {
  cublasComputeType_t compute;
  std::map<int, std::vector<unsigned char>> attrs;  // cublasLtMatmulDescAttributes_t -> value bytes
  template <class T>
  T get(cublasLtMatmulDescAttributes_t attr, T fallback) const {
    auto it = attrs.find(attr);
    if (it == attrs.end() || it->second.size() != sizeof(T)) return fallback;
    T v;
    std::memcpy(&v, it->second.data(), sizeof(T));
    return v;
  }
};

struct Layout {
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
};

// What this stand-in implements; anything else set on a descriptor is refused.
bool known_attribute(cublasLtMatmulDescAttributes_t attr) {
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
      return true;
    default:
      return false;
  }
}

float round_tf32(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits = (bits + 0x1000u) & ~0x1FFFu;  // round half up to 10 mantissa bits (cuBLAS: nearest)
  std::memcpy(&x, &bits, 4);
  return x;
}

float load(const void* p, cudaDataType type, int64_t index, bool tf32) {
  switch (type) {
    case CUDA_R_32F: {
      const float x = static_cast<const float*>(p)[index];
      return tf32 ? round_tf32(x) : x;
    }
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[index]);
    case CUDA_R_16F: return __half2float(static_cast<const __half*>(p)[index]);
    default: return 0.0f;
  }
}

bool supported_input(cudaDataType type) { return type == CUDA_R_32F || type == CUDA_R_16BF || type == CUDA_R_16F; }

// Column-major D[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C (+ bias[i] per row i).
cublasStatus_t gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* A,
                    cudaDataType a_type, int64_t lda, const void* B, cudaDataType b_type, int64_t ldb, float beta,
                    const float* C, int64_t ldc, float* D, int64_t ldd, const float* bias, bool tf32) {
  if (!supported_input(a_type) || !supported_input(b_type) || a_type != b_type) return CUBLAS_STATUS_NOT_SUPPORTED;
  std::vector<float> column(static_cast<size_t>(m));
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < m; ++i) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        const float a = load(A, a_type, trans_a ? p + i * lda : i + p * lda, tf32);
        const float b = load(B, b_type, trans_b ? j + p * ldb : p + j * ldb, tf32);
        sum += static_cast<double>(a) * b;
      }
      double out = alpha * sum;
      if (beta != 0.0f) out += static_cast<double>(beta) * C[i + j * ldc];  // beta 0: C is not read
      if (bias != nullptr) out += bias[i];
      column[i] = static_cast<float>(out);
    }
    for (int64_t i = 0; i < m; ++i) D[i + j * ldd] = column[i];  // D may alias C
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

struct cublasLtContext {};
struct cublasContext {};

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasLtGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_NOT_SUPPORTED ? "CUBLAS_STATUS_NOT_SUPPORTED (emulated cuBLASLt)"
                                               : "cuBLAS error (emulated cuBLASLt)";
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
  if (scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  *desc = reinterpret_cast<cublasLtMatmulDesc_t>(new Desc{compute, {}});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete reinterpret_cast<Desc*>(desc);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t bytes) {
  if (buf == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (!known_attribute(attr)) return CUBLAS_STATUS_NOT_SUPPORTED;
  const auto* p = static_cast<const unsigned char*>(buf);
  reinterpret_cast<Desc*>(desc)->attrs[attr].assign(p, p + bytes);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (ld < static_cast<int64_t>(rows)) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = reinterpret_cast<cublasLtMatrixLayout_t>(new Layout{type, rows, cols, ld});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete reinterpret_cast<Layout*>(layout);
  return CUBLAS_STATUS_SUCCESS;
}

// Preferences only restrict the choice of algorithm; the one emulated algorithm meets them all.
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  *pref = reinterpret_cast<cublasLtMatmulPreference_t>(new char);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete reinterpret_cast<char*>(pref);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
                                                    const void* buf, size_t) {
  return buf == nullptr ? CUBLAS_STATUS_INVALID_VALUE : CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatmulPreference_t, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* found) {
  const Desc& d = *reinterpret_cast<Desc*>(desc);
  const auto epilogue = d.get<uint32_t>(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_DEFAULT);
  *found = 0;
  if (epilogue != CUBLASLT_EPILOGUE_DEFAULT && epilogue != CUBLASLT_EPILOGUE_BIAS) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (!supported_input(reinterpret_cast<Layout*>(a)->type) || !supported_input(reinterpret_cast<Layout*>(b)->type)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  std::memset(&results[0], 0, sizeof(results[0]));
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *found = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t a_desc, const void* B, cublasLtMatrixLayout_t b_desc,
                              const void* beta, const void* C, cublasLtMatrixLayout_t c_desc, void* D,
                              cublasLtMatrixLayout_t d_desc, const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t) {
  const Desc& d = *reinterpret_cast<Desc*>(desc);
  const Layout& a = *reinterpret_cast<Layout*>(a_desc);
  const Layout& b = *reinterpret_cast<Layout*>(b_desc);
  const Layout& c = *reinterpret_cast<Layout*>(c_desc);
  const Layout& out = *reinterpret_cast<Layout*>(d_desc);
  const bool ta = d.get<int32_t>(CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_N) == CUBLAS_OP_T;
  const bool tb = d.get<int32_t>(CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N) == CUBLAS_OP_T;
  const int64_t m = static_cast<int64_t>(ta ? a.cols : a.rows), k = static_cast<int64_t>(ta ? a.rows : a.cols);
  const int64_t n = static_cast<int64_t>(tb ? b.rows : b.cols);
  if (static_cast<int64_t>(tb ? b.cols : b.rows) != k || static_cast<int64_t>(out.rows) != m ||
      static_cast<int64_t>(out.cols) != n || c.type != CUDA_R_32F || out.type != CUDA_R_32F) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const float* bias = nullptr;
  if (d.get<uint32_t>(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_DEFAULT) == CUBLASLT_EPILOGUE_BIAS) {
    if (d.get<int32_t>(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, CUDA_R_32F) != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    bias = static_cast<const float*>(d.get<const void*>(CUBLASLT_MATMUL_DESC_BIAS_POINTER, nullptr));
    if (bias == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  }
  const bool tf32 = d.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  return gemm(ta, tb, m, n, k, *static_cast<const float*>(alpha), A, a.type, a.ld, B, b.type, b.ld,
              *static_cast<const float*>(beta), static_cast<const float*>(C), c.ld, static_cast<float*>(D), out.ld,
              bias, tf32);
}

// The classic API: matmul.cu's fallback for shapes cuBLASLt has no algorithm for.
cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void*, size_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType a_type, int lda, const void* B,
                            cudaDataType b_type, int ldb, const void* beta, void* C, cudaDataType c_type, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (c_type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm(transa == CUBLAS_OP_T, transb == CUBLAS_OP_T, m, n, k, *static_cast<const float*>(alpha), A, a_type, lda,
              B, b_type, ldb, *static_cast<const float*>(beta), static_cast<const float*>(C), ldc,
              static_cast<float*>(C), ldc, nullptr, compute == CUBLAS_COMPUTE_32F_FAST_TF32);
}

}  // extern "C"
