// CPU RMSNorm forward/backward over the last dimension, statistics in float as Hugging Face's
// LlamaRMSNorm computes them (mean of squares, then rsqrt).
#include "kernels/rmsnorm.h"

#include <cmath>

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {

using detail::ArrayMap;
using detail::ConstArrayMap;

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t rows,
                     int64_t cols, float eps) {
  const ConstArrayMap w(weight, cols);
  detail::parallel_ranges(
      rows, detail::threads_for(rows * cols * 4),
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const ConstArrayMap x(inp + r * cols, cols);
          const float s = 1.0f / std::sqrt(x.square().mean() + eps);
          rstd[r] = s;
          ArrayMap(out + r * cols, cols) = (x * s) * w;
        }
      },
      1);
}

// With n = x rstd and g = dout * weight:
//   dinp = rstd (g - n mean(g n)),  dweight += sum_r dout n.
// dweight is summed per thread into its own cache-line-aligned slot and the slots are added in
// thread order, so the result does not depend on scheduling (as layernorm_backward).
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int64_t rows, int64_t cols) {
  const int threads = detail::threads_for(rows * cols * 8);
  const int64_t stride = (cols + 15) / 16 * 16;
  Eigen::ArrayXf partial = Eigen::ArrayXf::Zero(threads * stride);
  const ConstArrayMap w(weight, cols);
  auto rows_of = [&](int slot, int64_t r0, int64_t r1) {
    ArrayMap dw(partial.data() + slot * stride, cols);
    Eigen::ArrayXf n(cols), g(cols);
    for (int64_t r = r0; r < r1; ++r) {
      const ConstArrayMap x(inp + r * cols, cols), dy(dout + r * cols, cols);
      const float s = rstd[r];
      n = x * s;
      g = dy * w;
      const float gn_mean = (g * n).mean();
      ArrayMap(dinp + r * cols, cols) = s * (g - n * gn_mean);
      dw += dy * n;
    }
  };
  if (threads == 1) {
    rows_of(0, 0, rows);
  } else {
#pragma omp parallel num_threads(threads)
    {
      const detail::Range r = detail::split(rows, omp_get_num_threads(), omp_get_thread_num(), 1);
      rows_of(omp_get_thread_num(), r.begin, r.end);
    }
  }
  ArrayMap dweight_acc(dweight, cols);
  for (int t = 0; t < threads; ++t) dweight_acc += partial.segment(t * stride, cols);
}

}  // namespace tessera::kernels::cpu
