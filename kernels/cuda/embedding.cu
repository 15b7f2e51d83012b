// CUDA token (vocabulary-sharded) and position embeddings: grid-stride loops over the output
// elements; the token gradient scatters with atomicAdd, the position gradient is a column sum.
#include "kernels/cuda/bias_cuda.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/embedding_cuda.h"

namespace tessera::kernels::cuda {
namespace {

__global__ void token_embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte,
                                               int64_t n, int64_t C, int64_t vocab_start,
                                               int64_t vocab_local) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    const int64_t r = i / C, c = i - r * C;
    const int64_t t = tokens[r] - vocab_start;
    out[i] = (t >= 0 && t < vocab_local) ? wte[t * C + c] : 0.0f;
  }
}

// Consecutive threads take consecutive columns of a row, so the atomics of one warp hit one
// row's contiguous addresses; collisions happen only between rows with the same token.
__global__ void token_embedding_backward_kernel(float* dwte, const float* dout,
                                                const int32_t* tokens, int64_t n, int64_t C,
                                                int64_t vocab_start, int64_t vocab_local) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    const int64_t r = i / C, c = i - r * C;
    const int64_t t = tokens[r] - vocab_start;
    if (t >= 0 && t < vocab_local) atomicAdd(dwte + t * C + c, dout[i]);
  }
}

__global__ void position_embedding_forward_kernel(float* x, const float* wpe, int64_t n,
                                                  int64_t TC) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) x[i] += wpe[i % TC];
}

}  // namespace

void token_embedding_forward(float* out, const int32_t* tokens, const float* wte, int64_t rows,
                             int64_t C, int64_t vocab_start, int64_t vocab_local,
                             cudaStream_t stream) {
  const int64_t n = rows * C;
  if (n <= 0) return;
  token_embedding_forward_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(
      out, tokens, wte, n, C, vocab_start, vocab_local);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void token_embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t rows,
                              int64_t C, int64_t vocab_start, int64_t vocab_local,
                              cudaStream_t stream) {
  const int64_t n = rows * C;
  if (n <= 0) return;
  token_embedding_backward_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(
      dwte, dout, tokens, n, C, vocab_start, vocab_local);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void position_embedding_forward(float* x, const float* wpe, int64_t B, int64_t T, int64_t C,
                                cudaStream_t stream) {
  const int64_t n = B * T * C;
  if (n <= 0) return;
  position_embedding_forward_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(
      x, wpe, n, T * C);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

// dout viewed as [B, T * C]: the gradient is its column sums, exactly the bias gradient.
void position_embedding_backward(float* dwpe, const float* dout, int64_t B, int64_t T, int64_t C,
                                 cudaStream_t stream) {
  bias_backward(dwpe, dout, B, T * C, stream);
}

}  // namespace tessera::kernels::cuda
