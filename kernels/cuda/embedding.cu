// CUDA token (vocabulary-sharded) and position embeddings: grid-stride loops over the output
// elements; the token gradient is gathered per token in row order (no atomics, so repeat runs
// give the same bits), the position gradient is a column sum.
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

// Rows a token-gradient block gathers per pass (8 KiB of shared memory).
constexpr int kGatherChunk = 1024;

// One warp-sized block per row r. The block whose row is the first occurrence of its token (in
// the shard) owns that token's gradient row: it gathers the rows holding the token, in row order
// (a ballot per 32 rows compacts them into shared memory, kGatherChunk at a time), then adds
// them onto dwte[t, :], each lane a column at a time. No atomics, so the additions happen in the
// same order on every run, and it is the CPU kernel's order (dwte[t] += dout[r] for r
// ascending): the results agree bit for bit. Work: rows^2 / 64 warp compares to find owners and
// rows / 32 per owner to gather (~1 M and ~1 M warp instructions for 8192 rows), then the rows *
// C additions every backward needs.
__global__ void __launch_bounds__(32)
    token_embedding_backward_kernel(float* dwte, const float* dout, const int32_t* tokens,
                                    int64_t rows, int64_t C, int64_t vocab_start,
                                    int64_t vocab_local) {
  __shared__ int64_t gathered[kGatherChunk];
  const int lane = threadIdx.x;
  const int64_t r = blockIdx.x;
  const int32_t token = tokens[r];
  const int64_t t = token - vocab_start;
  if (t < 0 || t >= vocab_local) return;  // the whole block leaves together
  bool earlier = false;
  for (int64_t q = lane; q < r; q += 32) earlier = earlier || tokens[q] == token;
  if (__ballot_sync(detail::kFullMask, earlier) != 0u) return;  // not the first occurrence
  for (int64_t q0 = r; q0 < rows;) {
    int count = 0;  // the same in every lane, as q0 is
    for (; q0 < rows && count <= kGatherChunk - 32; q0 += 32) {
      const int64_t q = q0 + lane;
      const bool match = q < rows && tokens[q] == token;
      const unsigned int mask = __ballot_sync(detail::kFullMask, match);
      if (match) gathered[count + __popc(mask & ((1u << lane) - 1u))] = q;
      count += __popc(mask);
    }
    __syncthreads();  // the block is one warp: the gathered rows are visible to every lane
    for (int64_t c = lane; c < C; c += 32) {
      float acc = dwte[t * C + c];
      for (int i = 0; i < count; ++i) acc += dout[gathered[i] * C + c];
      dwte[t * C + c] = acc;
    }
    __syncthreads();  // every lane is done reading before the next pass overwrites the list
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
  if (rows <= 0 || C <= 0) return;
  TESSERA_CHECK(rows <= int64_t{0x7fffffff}, "token embedding backward: {} rows exceed the CUDA grid",
                rows);
  token_embedding_backward_kernel<<<static_cast<unsigned int>(rows), 32, 0, stream>>>(
      dwte, dout, tokens, rows, C, vocab_start, vocab_local);
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
