// CUDA softmax cross-entropy pieces: one block per row for the reductions (row max, sums of
// exponentials), a grid-stride loop over the logits for the gradient. Probabilities are never
// stored: the backward pass recomputes exp(logit - max) / sum from the saved row statistics.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cross_entropy_cuda.h"

namespace tessera::kernels::cuda {
namespace {

// Rows go on grid.x (up to 2^31 - 1 of them).
__global__ void row_max_kernel(float* row_max, const float* logits, int64_t V_local,
                               int64_t valid) {
  __shared__ float scratch[32];
  const float* l = logits + blockIdx.x * V_local;
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < valid; c += blockDim.x) m = fmaxf(m, l[c]);
  m = detail::block_max(m, scratch);
  if (threadIdx.x == 0) row_max[blockIdx.x] = m;
}

// expf, not __expf: the fast intrinsic loses about two bits for large negative arguments.
__global__ void partial_sums_kernel(float* sum_exp, float* target_logit, const float* logits,
                                    const float* row_max, const int32_t* targets, int64_t V_local,
                                    int64_t valid, int64_t vocab_start) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const float* l = logits + r * V_local;
  const float m = row_max[r];
  float s = 0.0f;
  for (int64_t c = threadIdx.x; c < valid; c += blockDim.x) s += expf(l[c] - m);
  s = detail::block_sum(s, scratch);
  if (threadIdx.x == 0) {
    sum_exp[r] = s;
    const int64_t t = targets[r] - vocab_start;
    target_logit[r] = (t >= 0 && t < valid) ? l[t] : 0.0f;
  }
}

__global__ void loss_kernel(float* loss, const float* row_max, const float* sum_exp,
                            const float* target_logit, int64_t rows) {
  for (int64_t r = detail::grid_start(); r < rows; r += detail::grid_stride()) {
    loss[r] = logf(sum_exp[r]) + row_max[r] - target_logit[r];
  }
}

// The same arithmetic as the CPU kernel: exp(l - max) * (dloss / sum), then - dloss at the
// target.
__global__ void backward_kernel(float* dlogits, const float* logits, const float* row_max,
                                const float* sum_exp, const int32_t* targets, const float* dloss,
                                int64_t n, int64_t V_local, int64_t valid, int64_t vocab_start) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    const int64_t r = i / V_local, c = i - r * V_local;
    float d = 0.0f;
    if (c < valid) {
      d = expf(logits[i] - row_max[r]) * (dloss[r] / sum_exp[r]);
      if (c == targets[r] - vocab_start) d -= dloss[r];
    }
    dlogits[i] = d;
  }
}

void check_shard(int64_t rows, int64_t V_local, int64_t valid) {
  TESSERA_CHECK(valid >= 0 && valid <= V_local,
                "cross_entropy: valid columns {} outside [0, V_local={}]", valid, V_local);
  TESSERA_CHECK(rows <= int64_t{0x7fffffff}, "cross_entropy: {} rows exceed the grid limit", rows);
}

}  // namespace

void cross_entropy_row_max(float* row_max, const float* logits, int64_t rows, int64_t V_local,
                           int64_t valid, cudaStream_t stream) {
  check_shard(rows, V_local, valid);
  if (rows <= 0) return;
  row_max_kernel<<<static_cast<unsigned int>(rows), detail::kThreads, 0, stream>>>(
      row_max, logits, V_local, valid);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void cross_entropy_partial_sums(float* sum_exp, float* target_logit, const float* logits,
                                const float* row_max, const int32_t* targets, int64_t rows,
                                int64_t V_local, int64_t valid, int64_t vocab_start,
                                cudaStream_t stream) {
  check_shard(rows, V_local, valid);
  if (rows <= 0) return;
  partial_sums_kernel<<<static_cast<unsigned int>(rows), detail::kThreads, 0, stream>>>(
      sum_exp, target_logit, logits, row_max, targets, V_local, valid, vocab_start);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void cross_entropy_loss(float* loss, const float* row_max, const float* sum_exp,
                        const float* target_logit, int64_t rows, cudaStream_t stream) {
  if (rows <= 0) return;
  loss_kernel<<<detail::blocks_for(rows), detail::kThreads, 0, stream>>>(loss, row_max, sum_exp,
                                                                          target_logit, rows);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void cross_entropy_backward(float* dlogits, const float* logits, const float* row_max,
                            const float* sum_exp, const int32_t* targets, const float* dloss,
                            int64_t rows, int64_t V_local, int64_t valid, int64_t vocab_start,
                            cudaStream_t stream) {
  check_shard(rows, V_local, valid);
  const int64_t n = rows * V_local;
  if (n <= 0) return;
  backward_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(
      dlogits, logits, row_max, sum_exp, targets, dloss, n, V_local, valid, vocab_start);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
