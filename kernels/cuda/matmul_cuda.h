// CUDA matrix multiply and the Linear layer's forward/backward, the device twins of
// kernels/matmul.h, through cuBLASLt. Row-major, as the CPU kernels. Activation gradients are
// written (=), parameter gradients accumulated (+=).
//
// Three precisions: float32 in and out (full fp32 arithmetic unless the handle allows TF32), and
// bfloat16 or float16 inputs with float32 accumulation and output for mixed precision; bf16 and
// fp16 buffers are uint16_t bit patterns (the runtime's DType::BF16 / F16 storage). Host launchers enqueue on the given
// stream and return without synchronising; the handle's workspace makes one handle per stream.
#pragma once

#include <cstdint>

#include "kernels/cuda/cublas_handle.h"
#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

// C[M,N] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T. A is [M,K] (or [K,M] when
// trans_a), B is [K,N] (or [N,K] when trans_b). Leading dimensions are the row strides. With
// beta == 0, C is not read (it may hold NaNs).
void gemm(CublasHandle& handle, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
          float* C, int64_t ldc, cudaStream_t stream);
// The same with bf16 A and B; products and sums in float32.
void gemm_bf16(CublasHandle& handle, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
               float alpha, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb,
               float beta, float* C, int64_t ldc, cudaStream_t stream);
// The same with fp16 A and B (fp16 mixed precision, under loss scaling).
void gemm_f16(CublasHandle& handle, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc,
              cudaStream_t stream);

// The alignment (bytes) of inp, weight, bias and out at which linear_forward adds the bias in
// the cuBLASLt epilogue; below it, a broadcast kernel writes the bias and the GEMM accumulates
// onto it (same result, one more pass over out). Contract with the runtime: parameters in its
// flat buffers start at multiples of 64 elements (256 bytes of fp32, 128 of bf16), so weights
// and biases always meet it, and activation buffers come from the caching allocator (aligned).
constexpr uint32_t kEpilogueAlignment = 16;

// out[rows, out_features] = inp[rows, in_features] * weight[out_features, in_features]^T + bias.
// weight has PyTorch's nn.Linear layout; bias may be null. Any alignment works (see above).
void linear_forward(CublasHandle& handle, float* out, const float* inp, const float* weight,
                    const float* bias, int64_t rows, int64_t in_features, int64_t out_features,
                    cudaStream_t stream);
// dinp = dout * weight (written; skipped when dinp is null); dweight += dout^T * inp;
// dbias += column sums of dout (skipped when dbias is null).
void linear_backward(CublasHandle& handle, float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, int64_t rows,
                     int64_t in_features, int64_t out_features, cudaStream_t stream);

// Mixed precision: bf16 activations, weights and output gradient; float32 outputs and
// parameter gradients (accumulated into the fp32 master gradients).
void linear_forward_bf16(CublasHandle& handle, float* out, const uint16_t* inp,
                         const uint16_t* weight, const float* bias, int64_t rows,
                         int64_t in_features, int64_t out_features, cudaStream_t stream);
// The forward with fp16 inputs.
void linear_forward_f16(CublasHandle& handle, float* out, const uint16_t* inp, const uint16_t* weight,
                        const float* bias, int64_t rows, int64_t in_features, int64_t out_features,
                        cudaStream_t stream);
void linear_backward_bf16(CublasHandle& handle, float* dinp, float* dweight, float* dbias,
                          const uint16_t* dout, const uint16_t* inp, const uint16_t* weight,
                          int64_t rows, int64_t in_features, int64_t out_features,
                          cudaStream_t stream);

}  // namespace tessera::kernels::cuda
