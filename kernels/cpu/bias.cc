// CPU bias broadcast and its gradient.
#include "kernels/bias.h"

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {

void bias_forward(float* x, const float* bias, int64_t rows, int64_t cols) {
  detail::parallel_ranges(
      rows, detail::threads_for(rows * cols),
      [&](int64_t r0, int64_t r1) {
        detail::mat(x + r0 * cols, r1 - r0, cols, cols).rowwise() +=
            Eigen::Map<const Eigen::RowVectorXf>(bias, cols);
      },
      1);
}

// Each thread owns a range of columns and sums all rows into a private accumulator, added to
// dbias once: writing dbias row by row would bounce the cache line the two ranges share. The
// sums need no reduction and do not depend on the thread count.
void bias_backward(float* dbias, const float* dout, int64_t rows, int64_t cols) {
  if (rows == 0) return;
  detail::parallel_ranges(cols, detail::threads_for(rows * cols), [&](int64_t c0, int64_t c1) {
    Eigen::ArrayXf acc = detail::ConstArrayMap(dout + c0, c1 - c0);
    for (int64_t r = 1; r < rows; ++r) acc += detail::ConstArrayMap(dout + r * cols + c0, c1 - c0);
    detail::ArrayMap(dbias + c0, c1 - c0) += acc;
  });
}

// The column ranges, and the order of the sums, of the fp32 version above.
void bias_backward(float* dbias, uint16_t* dout_half, Half format, const float* dout, int64_t rows, int64_t cols) {
  if (rows == 0) return;
  detail::parallel_ranges(cols, detail::threads_for(rows * cols), [&](int64_t c0, int64_t c1) {
    Eigen::ArrayXf acc = detail::ConstArrayMap(dout + c0, c1 - c0);
    cast_f32_to_half(format, dout_half + c0, dout + c0, c1 - c0);
    for (int64_t r = 1; r < rows; ++r) {
      acc += detail::ConstArrayMap(dout + r * cols + c0, c1 - c0);
      cast_f32_to_half(format, dout_half + r * cols + c0, dout + r * cols + c0, c1 - c0);
    }
    detail::ArrayMap(dbias + c0, c1 - c0) += acc;
  });
}

}  // namespace tessera::kernels::cpu
