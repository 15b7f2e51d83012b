// Matrix multiply and the Linear layer's forward/backward. Row-major float32.
// Convention of all kernels: activation gradients are written (=), parameter gradients are
// accumulated (+=) so microbatches can accumulate into the same buffers.
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// C[M,N] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T. A is [M,K] (or [K,M] when
// trans_a), B is [K,N] (or [N,K] when trans_b). Leading dimensions are the row strides.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// out[rows, out_features] = inp[rows, in_features] * weight[out_features, in_features]^T + bias.
// weight has PyTorch's nn.Linear layout; bias may be null.
void linear_forward(float* out, const float* inp, const float* weight, const float* bias,
                    int64_t rows, int64_t in_features, int64_t out_features);

// dinp = dout * weight (written; skipped when dinp is null); dweight += dout^T * inp;
// dbias += column sums of dout (skipped when dbias is null).
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t rows, int64_t in_features, int64_t out_features);

}  // namespace tessera::kernels::cpu
