// CUDA RMSNorm: one warp per row for the forward pass and the input gradient, the weight
// gradient a deterministic column sum (as kernels/cuda/layernorm.cu).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rmsnorm_cuda.h"

namespace tessera::kernels::cuda {
namespace {

constexpr int kRowsPerBlock = detail::kThreads / 32;

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* inp, const float* weight, int64_t rows,
                                       int64_t cols, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= rows) return;
  const float* x = inp + row * cols;
  float sq = 0.0f;
  for (int64_t c = lane; c < cols; c += 32) sq += x[c] * x[c];
  // 1 / sqrtf rather than rsqrtf: the CPU kernel's rounding.
  const float s = 1.0f / sqrtf(detail::warp_sum(sq) / static_cast<float>(cols) + eps);
  float* y = out + row * cols;
  for (int64_t c = lane; c < cols; c += 32) y[c] = (x[c] * s) * weight[c];
  if (lane == 0) rstd[row] = s;
}

// With n = x rstd and g = dout * weight: dinp = rstd (g - n mean(g n)).
__global__ void rmsnorm_backward_input_kernel(float* dinp, const float* dout, const float* inp, const float* weight,
                                              const float* rstd, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= rows) return;
  const float* x = inp + row * cols;
  const float* dy = dout + row * cols;
  const float s = rstd[row];
  float gn_sum = 0.0f;
  for (int64_t c = lane; c < cols; c += 32) gn_sum += dy[c] * weight[c] * (x[c] * s);
  const float gn_mean = detail::warp_sum(gn_sum) / static_cast<float>(cols);
  // The warp has read its whole row of dy before any write: dinp may alias dout.
  float* dx = dinp + row * cols;
  for (int64_t c = lane; c < cols; c += 32) dx[c] = s * (dy[c] * weight[c] - (x[c] * s) * gn_mean);
}

struct WeightGrad {
  const float* dout;
  const float* inp;
  const float* rstd;
  int64_t cols;
  __device__ float operator()(int64_t r, int64_t c) const {
    const int64_t i = r * cols + c;
    return dout[i] * (inp[i] * rstd[r]);
  }
};

unsigned int row_blocks(int64_t rows) { return static_cast<unsigned int>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t rows, int64_t cols,
                     float eps, cudaStream_t stream) {
  if (rows <= 0) return;
  TESSERA_CHECK(cols > 0, "rmsnorm_forward: cols must be positive, got {}", cols);
  rmsnorm_forward_kernel<<<row_blocks(rows), detail::kThreads, 0, stream>>>(out, rstd, inp, weight, rows, cols, eps);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  // The weight gradient reads dout, so it goes first: dinp may overwrite it.
  detail::launch_column_sum(dweight, rows, cols, WeightGrad{dout, inp, rstd, cols}, stream);
  rmsnorm_backward_input_kernel<<<row_blocks(rows), detail::kThreads, 0, stream>>>(dinp, dout, inp, weight, rstd,
                                                                                   rows, cols);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
