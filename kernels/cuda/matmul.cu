// CUDA GEMM and Linear forward/backward through cuBLASLt, with cublasGemmEx as the fallback for
// shapes or alignments cuBLASLt finds no algorithm for. Each problem's descriptors and algorithm
// come from the handle's plan cache (gemm_plan_cache.cuh), built on the problem's first call.
//
// cuBLAS is column-major. A row-major [r, c] matrix with row stride ld is the column-major
// [c, r] matrix with the same ld, so the row-major C = op(A) op(B) is computed as the
// column-major C^T = op(B)^T op(A)^T: B goes first, A second, and M and N swap.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/bias_cuda.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cublas_check.cuh"
#include "kernels/cuda/gemm_plan_cache.cuh"
#include "kernels/cuda/matmul_cuda.h"

namespace tessera::kernels::cuda {
namespace {

// One row-major GEMM C = alpha op(A) op(B) + beta C (+ bias[n] on every row when bias is set).
struct Gemm {
  bool trans_a;
  bool trans_b;
  int64_t M, N, K;
  float alpha;
  const void* A;
  int64_t lda;
  const void* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
  cudaDataType_t input_type;  // CUDA_R_32F, CUDA_R_16BF or CUDA_R_16F
  const float* bias;
};

// cuBLASLt assumes 256-byte aligned pointers unless told otherwise, and views into a buffer
// (a head, a shard) are often less aligned than that.
uint32_t alignment_of(const void* p) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && addr % align != 0) align /= 2;
  return align;
}

cublasComputeType_t compute_type(const CublasHandle& handle, cudaDataType_t input_type) {
  if (input_type == CUDA_R_32F && handle.allow_tf32()) return CUBLAS_COMPUTE_32F_FAST_TF32;
  return CUBLAS_COMPUTE_32F;
}

// Returns false when cuBLASLt has no algorithm for the problem (the caller falls back).
bool try_lt_matmul(CublasHandle& handle, const Gemm& g, cudaStream_t stream) {
  const detail::GemmKey key{g.trans_a, g.trans_b, g.bias != nullptr, g.input_type,
                            compute_type(handle, g.input_type), g.M, g.N, g.K, g.lda, g.ldb,
                            g.ldc, alignment_of(g.A), alignment_of(g.B), alignment_of(g.C)};
  const detail::GemmPlan& plan = handle.plans().get(handle.lt(), key, handle.workspace_bytes());
  if (!plan.found()) return false;
  if (g.bias != nullptr) {
    // The only per-call attribute: the plan is shared by every call of this problem.
    const void* bias = g.bias;
    TESSERA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        plan.desc(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  }
  TESSERA_CUBLAS_CHECK(cublasLtMatmul(handle.lt(), plan.desc(), &g.alpha, g.B, plan.first(), g.A,
                                      plan.second(), &g.beta, g.C, plan.out(), g.C, plan.out(),
                                      plan.algo(), handle.workspace(), handle.workspace_bytes(),
                                      stream));
  return true;
}

// The classic API takes 32-bit sizes but accepts any leading dimension and alignment.
void gemm_ex(CublasHandle& handle, const Gemm& g, cudaStream_t stream) {
  constexpr int64_t kMaxInt = 0x7fffffff;
  TESSERA_CHECK(g.M <= kMaxInt && g.N <= kMaxInt && g.K <= kMaxInt && g.lda <= kMaxInt &&
                    g.ldb <= kMaxInt && g.ldc <= kMaxInt,
                "gemm: M={} N={} K={} exceed the 32-bit sizes of cublasGemmEx", g.M, g.N, g.K);
  handle.count_fallback();
  TESSERA_CUBLAS_CHECK(cublasSetStream(handle.blas(), stream));
  // cublasSetStream resets the workspace to cuBLAS's own pool; point it back at ours.
  TESSERA_CUBLAS_CHECK(
      cublasSetWorkspace(handle.blas(), handle.workspace(), handle.workspace_bytes()));
  TESSERA_CUBLAS_CHECK(cublasGemmEx(
      handle.blas(), g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(g.N), static_cast<int>(g.M), static_cast<int>(g.K), &g.alpha, g.B,
      g.input_type, static_cast<int>(g.ldb), g.A, g.input_type, static_cast<int>(g.lda), &g.beta,
      g.C, CUDA_R_32F, static_cast<int>(g.ldc), compute_type(handle, g.input_type),
      CUBLAS_GEMM_DEFAULT));
}

// C[m, :N] *= beta (0 writes zeros, so NaNs in C do not survive): the K = 0 product.
__global__ void scale_matrix_kernel(float* C, int64_t M, int64_t N, int64_t ldc, float beta) {
  for (int64_t i = detail::grid_start(); i < M * N; i += detail::grid_stride()) {
    const int64_t r = i / N, c = i - r * N;
    float* x = C + r * ldc + c;
    *x = beta == 0.0f ? 0.0f : *x * beta;
  }
}

// out[r, c] = bias[c]: the starting value the GEMM accumulates onto when the epilogue is off.
__global__ void broadcast_rows_kernel(float* out, const float* bias, int64_t n, int64_t cols) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) out[i] = bias[i % cols];
}

void run_gemm(CublasHandle& handle, Gemm g, cudaStream_t stream) {
  TESSERA_CHECK(g.M >= 0 && g.N >= 0 && g.K >= 0, "gemm: negative size M={} N={} K={}", g.M, g.N,
                g.K);
  TESSERA_CHECK(g.lda >= (g.trans_a ? g.M : g.K) && g.ldb >= (g.trans_b ? g.K : g.N) && g.ldc >= g.N,
                "gemm: leading dimension too small (lda={} ldb={} ldc={})", g.lda, g.ldb, g.ldc);
  TESSERA_CHECK(g.bias == nullptr, "gemm: a bias goes through linear_forward");
  if (g.M == 0 || g.N == 0) return;
  if (g.K == 0) {
    if (g.beta != 1.0f) {
      scale_matrix_kernel<<<detail::blocks_for(g.M * g.N), detail::kThreads, 0, stream>>>(
          g.C, g.M, g.N, g.ldc, g.beta);
      TESSERA_CUDA_CHECK(cudaGetLastError());
    }
    return;
  }
  if (!try_lt_matmul(handle, g, stream)) gemm_ex(handle, g, stream);
}

// cuBLASLt's bias epilogue needs its vector (and the operands) 16-byte aligned: a bias that is
// only 4-byte aligned, such as a parameter at an odd offset of a flat buffer, must not go
// through it (the heuristic is told the operands' alignment, but not the bias's).
bool epilogue_aligned(const void* inp, const void* weight, const float* bias, const float* out) {
  const void* pointers[] = {inp, weight, bias, out};
  for (const void* p : pointers) {
    if (alignment_of(p) < kEpilogueAlignment) return false;
  }
  return true;
}

// out = inp weight^T (+ bias): the bias in the cuBLASLt epilogue when the handle allows it, the
// pointers are 16-byte aligned and cuBLASLt has such an algorithm, else written first and
// accumulated onto (beta = 1).
void run_linear_forward(CublasHandle& handle, float* out, const void* inp, const void* weight,
                        const float* bias, int64_t rows, int64_t in_features,
                        int64_t out_features, cudaDataType_t type, cudaStream_t stream) {
  if (rows == 0 || out_features == 0) return;
  Gemm g{false, true, rows, out_features, in_features, 1.0f, inp, in_features, weight,
         in_features, 0.0f, out, out_features, type, nullptr};
  if (bias != nullptr && in_features > 0 && handle.fuse_epilogues() &&
      epilogue_aligned(inp, weight, bias, out)) {
    Gemm fused = g;
    fused.bias = bias;
    if (try_lt_matmul(handle, fused, stream)) {
      handle.count_fused_bias();
      return;
    }
  }
  if (bias != nullptr) {
    const int64_t n = rows * out_features;
    broadcast_rows_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(out, bias, n,
                                                                                  out_features);
    TESSERA_CUDA_CHECK(cudaGetLastError());
    g.beta = 1.0f;
  }
  run_gemm(handle, g, stream);
}

struct ReadBf16 {
  const __nv_bfloat16* x;
  int64_t cols;
  __device__ float operator()(int64_t r, int64_t c) const {
    return __bfloat162float(x[r * cols + c]);
  }
};

}  // namespace

void gemm(CublasHandle& handle, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
          float* C, int64_t ldc, cudaStream_t stream) {
  run_gemm(handle,
           Gemm{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, CUDA_R_32F, nullptr},
           stream);
}

void gemm_bf16(CublasHandle& handle, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
               float alpha, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb,
               float beta, float* C, int64_t ldc, cudaStream_t stream) {
  run_gemm(
      handle,
      Gemm{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, CUDA_R_16BF, nullptr},
      stream);
}

void gemm_f16(CublasHandle& handle, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc,
              cudaStream_t stream) {
  run_gemm(handle, Gemm{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, CUDA_R_16F, nullptr}, stream);
}

void linear_forward(CublasHandle& handle, float* out, const float* inp, const float* weight,
                    const float* bias, int64_t rows, int64_t in_features, int64_t out_features,
                    cudaStream_t stream) {
  run_linear_forward(handle, out, inp, weight, bias, rows, in_features, out_features, CUDA_R_32F,
                     stream);
}

void linear_backward(CublasHandle& handle, float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, int64_t rows,
                     int64_t in_features, int64_t out_features, cudaStream_t stream) {
  if (dinp != nullptr) {
    gemm(handle, false, false, rows, in_features, out_features, 1.0f, dout, out_features, weight,
         in_features, 0.0f, dinp, in_features, stream);
  }
  gemm(handle, true, false, out_features, in_features, rows, 1.0f, dout, out_features, inp,
       in_features, 1.0f, dweight, in_features, stream);
  if (dbias != nullptr) bias_backward(dbias, dout, rows, out_features, stream);
}

void linear_forward_bf16(CublasHandle& handle, float* out, const uint16_t* inp,
                         const uint16_t* weight, const float* bias, int64_t rows,
                         int64_t in_features, int64_t out_features, cudaStream_t stream) {
  run_linear_forward(handle, out, inp, weight, bias, rows, in_features, out_features, CUDA_R_16BF,
                     stream);
}

void linear_forward_f16(CublasHandle& handle, float* out, const uint16_t* inp, const uint16_t* weight,
                        const float* bias, int64_t rows, int64_t in_features, int64_t out_features,
                        cudaStream_t stream) {
  run_linear_forward(handle, out, inp, weight, bias, rows, in_features, out_features, CUDA_R_16F, stream);
}

void linear_backward_bf16(CublasHandle& handle, float* dinp, float* dweight, float* dbias,
                          const uint16_t* dout, const uint16_t* inp, const uint16_t* weight,
                          int64_t rows, int64_t in_features, int64_t out_features,
                          cudaStream_t stream) {
  if (dinp != nullptr) {
    gemm_bf16(handle, false, false, rows, in_features, out_features, 1.0f, dout, out_features,
              weight, in_features, 0.0f, dinp, in_features, stream);
  }
  gemm_bf16(handle, true, false, out_features, in_features, rows, 1.0f, dout, out_features, inp,
            in_features, 1.0f, dweight, in_features, stream);
  if (dbias != nullptr) {
    detail::launch_column_sum(
        dbias, rows, out_features,
        ReadBf16{reinterpret_cast<const __nv_bfloat16*>(dout), out_features}, stream);
  }
}

}  // namespace tessera::kernels::cuda
