// CUDA bias broadcast (grid-stride over the elements) and its gradient (a column sum).
#include "kernels/cuda/bias_cuda.h"
#include "kernels/cuda/common.cuh"

namespace tessera::kernels::cuda {
namespace {

__global__ void bias_forward_kernel(float* x, const float* bias, int64_t n, int64_t cols) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) x[i] += bias[i % cols];
}

struct ReadElement {
  const float* x;
  int64_t cols;
  __device__ float operator()(int64_t r, int64_t c) const { return x[r * cols + c]; }
};

}  // namespace

void bias_forward(float* x, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n <= 0) return;
  bias_forward_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(x, bias, n, cols);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

void bias_backward(float* dbias, const float* dout, int64_t rows, int64_t cols,
                   cudaStream_t stream) {
  detail::launch_column_sum(dbias, rows, cols, ReadElement{dout, cols}, stream);
}

}  // namespace tessera::kernels::cuda
