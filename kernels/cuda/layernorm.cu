// CUDA LayerNorm: one warp per row for the forward pass and for the input gradient; the
// parameter gradients are a deterministic column sum over the rows.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/layernorm_cuda.h"

namespace tessera::kernels::cuda {
namespace {

constexpr int kRowsPerBlock = detail::kThreads / 32;

// Two passes over the row (mean, then the centred sum of squares) as the CPU kernel, which
// avoids the cancellation of E[x^2] - E[x]^2 for rows with a large mean. The row is re-read
// from L1/L2 rather than held in registers, so any width works.
__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp,
                                         const float* weight, const float* bias, int64_t rows,
                                         int64_t cols, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= rows) return;
  const float* x = inp + row * cols;
  float sum = 0.0f;
  for (int64_t c = lane; c < cols; c += 32) sum += x[c];
  const float m = detail::warp_sum(sum) / static_cast<float>(cols);
  float sq = 0.0f;
  for (int64_t c = lane; c < cols; c += 32) {
    const float d = x[c] - m;
    sq += d * d;
  }
  const float var = detail::warp_sum(sq) / static_cast<float>(cols);
  // 1 / sqrtf rather than rsqrtf: the CPU kernel's rounding, not a 2-ulp approximation.
  const float s = 1.0f / sqrtf(var + eps);
  float* y = out + row * cols;
  for (int64_t c = lane; c < cols; c += 32) y[c] = (x[c] - m) * (s * weight[c]) + bias[c];
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// With n = (x - mean) rstd and g = dout * weight: dinp = rstd (g - mean(g) - n mean(g n)).
__global__ void layernorm_backward_input_kernel(float* dinp, const float* dout, const float* inp,
                                                const float* weight, const float* mean,
                                                const float* rstd, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= rows) return;
  const float* x = inp + row * cols;
  const float* dy = dout + row * cols;
  const float m = mean[row], s = rstd[row];
  float g_sum = 0.0f, gn_sum = 0.0f;
  for (int64_t c = lane; c < cols; c += 32) {
    const float g = dy[c] * weight[c];
    g_sum += g;
    gn_sum += g * ((x[c] - m) * s);
  }
  const float g_mean = detail::warp_sum(g_sum) / static_cast<float>(cols);
  const float gn_mean = detail::warp_sum(gn_sum) / static_cast<float>(cols);
  // Every lane has read its whole share of dy before writing dinp at the same indices, so
  // dinp may alias dout.
  float* dx = dinp + row * cols;
  for (int64_t c = lane; c < cols; c += 32) {
    const float n = (x[c] - m) * s;
    dx[c] = s * (dy[c] * weight[c] - g_mean - n * gn_mean);
  }
}

struct WeightGrad {
  const float* dout;
  const float* inp;
  const float* mean;
  const float* rstd;
  int64_t cols;
  __device__ float operator()(int64_t r, int64_t c) const {
    const int64_t i = r * cols + c;
    return dout[i] * ((inp[i] - mean[r]) * rstd[r]);
  }
};

struct BiasGrad {
  const float* dout;
  int64_t cols;
  __device__ float operator()(int64_t r, int64_t c) const { return dout[r * cols + c]; }
};

unsigned int row_blocks(int64_t rows) {
  return static_cast<unsigned int>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t rows, int64_t cols, cudaStream_t stream,
                       float eps) {
  if (rows <= 0) return;
  TESSERA_CHECK(cols > 0, "layernorm_forward: cols must be positive, got {}", cols);
  layernorm_forward_kernel<<<row_blocks(rows), detail::kThreads, 0, stream>>>(
      out, mean, rstd, inp, weight, bias, rows, cols, eps);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  // The parameter gradients read dout, so they go first: dinp may overwrite it.
  detail::launch_column_sum(dweight, rows, cols, WeightGrad{dout, inp, mean, rstd, cols}, stream);
  detail::launch_column_sum(dbias, rows, cols, BiasGrad{dout, cols}, stream);
  layernorm_backward_input_kernel<<<row_blocks(rows), detail::kThreads, 0, stream>>>(
      dinp, dout, inp, weight, mean, rstd, rows, cols);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
