// CPU LayerNorm forward/backward over the last dimension (biased variance, as PyTorch).
#include "kernels/layernorm.h"

#include <cmath>

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {

using detail::ArrayMap;
using detail::ConstArrayMap;

namespace {

// Rows r0..r1 of the forward; row r's output goes to row_out(r) (an fp32 pointer).
template <class RowOut>
void layernorm_rows(int64_t r0, int64_t r1, RowOut&& row_out, float* mean, float* rstd, const float* inp,
                    const float* weight, const float* bias, int64_t cols, float eps) {
  const ConstArrayMap w(weight, cols), b(bias, cols);
  for (int64_t r = r0; r < r1; ++r) {
    const ConstArrayMap x(inp + r * cols, cols);
    // Two passes (mean, then the centred sum of squares) avoid the cancellation of
    // E[x^2] - E[x]^2 for rows with a large mean.
    const float m = x.mean();
    const float var = (x - m).square().mean();
    const float s = 1.0f / std::sqrt(var + eps);
    ArrayMap(row_out(r), cols) = (x - m) * (s * w) + b;
    mean[r] = m;
    rstd[r] = s;
  }
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t rows, int64_t cols, float eps) {
  detail::parallel_ranges(
      rows, detail::threads_for(rows * cols * 8),
      [&](int64_t r0, int64_t r1) {
        layernorm_rows(r0, r1, [&](int64_t r) { return out + r * cols; }, mean, rstd, inp, weight, bias, cols, eps);
      },
      1);
}

// Each row is normalised into a per-thread fp32 row (in L1) and rounded from there: one pass over
// the output instead of an fp32 tensor written, read back and cast.
void layernorm_forward(uint16_t* out, Half format, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t rows, int64_t cols, float eps) {
  detail::parallel_ranges(
      rows, detail::threads_for(rows * cols * 8),
      [&](int64_t r0, int64_t r1) {
        Eigen::ArrayXf row(cols);
        for (int64_t r = r0; r < r1; ++r) {
          layernorm_rows(r, r + 1, [&](int64_t) { return row.data(); }, mean, rstd, inp, weight, bias, cols, eps);
          cast_f32_to_half(format, out + r * cols, row.data(), cols);
        }
      },
      1);
}

// With n = (x - mean) rstd and g = dout * weight:
//   dinp = rstd (g - mean(g) - n mean(g n)),  dweight += sum_r dout n,  dbias += sum_r dout.
// Each thread accumulates dweight/dbias over its rows into its own slot; the slots are added in
// thread order afterwards so the result is the same on every run. Slots start on their own
// cache lines (Eigen allocates 64-byte aligned; the stride is a multiple of 16 floats) so the
// threads' per-row writes do not bounce a shared line.
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        int64_t rows, int64_t cols) {
  const int threads = detail::threads_for(rows * cols * 12);
  const int64_t stride = (2 * cols + 15) / 16 * 16;
  Eigen::ArrayXf partial = Eigen::ArrayXf::Zero(threads * stride);
  const ConstArrayMap w(weight, cols);
  auto rows_of = [&](int slot, int64_t r0, int64_t r1) {
    ArrayMap dw(partial.data() + slot * stride, cols), db(dw.data() + cols, cols);
    Eigen::ArrayXf n(cols), g(cols);
    for (int64_t r = r0; r < r1; ++r) {
      const ConstArrayMap x(inp + r * cols, cols), dy(dout + r * cols, cols);
      const float s = rstd[r];
      n = (x - mean[r]) * s;
      g = dy * w;
      const float g_mean = g.mean();
      const float gn_mean = (g * n).mean();
      ArrayMap(dinp + r * cols, cols) = s * (g - g_mean - n * gn_mean);
      dw += dy * n;
      db += dy;
    }
  };
  if (threads == 1) {
    rows_of(0, 0, rows);
  } else {
#pragma omp parallel num_threads(threads)
    {
      const detail::Range r =
          detail::split(rows, omp_get_num_threads(), omp_get_thread_num(), 1);
      rows_of(omp_get_thread_num(), r.begin, r.end);
    }
  }
  ArrayMap dweight_acc(dweight, cols), dbias_acc(dbias, cols);
  for (int t = 0; t < threads; ++t) {
    dweight_acc += partial.segment(t * stride, cols);
    dbias_acc += partial.segment(t * stride + cols, cols);
  }
}

}  // namespace tessera::kernels::cpu
