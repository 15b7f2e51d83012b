// CPU GELU (tanh approximation) forward/backward, vectorised through Eigen's array tanh.
#include "kernels/gelu.h"

#include <algorithm>

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kCubic = 0.044715f;
// tanh and its polynomial cost about 20 flops per element.
constexpr int64_t kCostPerElement = 20;

// Elements per stack-buffer block of the 16-bit path: small enough for L1.
constexpr int64_t kBlock = 1024;

void gelu_values(float* out, const float* inp, int64_t n) {
  detail::ConstArrayMap x(inp, n);
  detail::ArrayMap(out, n) = 0.5f * x * (1.0f + (kSqrt2OverPi * (x + kCubic * x.cube())).tanh());
}

// d/dx [x/2 (1 + tanh u)] with u = k (x + c x^3) is
//   (1 + tanh u)/2 + x/2 (1 - tanh^2 u) k (1 + 3c x^2).
// n <= kBlock: tanh u lives in a stack buffer rather than a heap temporary.
void gelu_grad_values(float* dinp, const float* inp, const float* dout, int64_t n) {
  alignas(64) float tanh_u[kBlock];
  detail::ConstArrayMap x(inp, n);
  detail::ArrayMap t(tanh_u, n);
  t = (kSqrt2OverPi * (x + kCubic * x.cube())).tanh();
  detail::ArrayMap(dinp, n) =
      detail::ConstArrayMap(dout, n) *
      (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t.square()) * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x.square()));
}

}  // namespace

void gelu_forward(float* out, const float* inp, int64_t n) {
  detail::parallel_elements(n, kCostPerElement, [&](int64_t b, int64_t e) { gelu_values(out + b, inp + b, e - b); });
}

// Blocks start at multiples of 16 elements, as the fp32 path's thread ranges do, so the same
// elements take Eigen's vector and scalar tanh: the rounded values are exactly the fp32 ones'.
void gelu_forward(uint16_t* out, Half format, const float* inp, int64_t n) {
  detail::parallel_elements(n, kCostPerElement, [&](int64_t b, int64_t e) {
    alignas(64) float block[kBlock];
    for (int64_t i = b; i < e; i += kBlock) {
      const int64_t len = std::min(kBlock, e - i);
      gelu_values(block, inp + i, len);
      cast_f32_to_half(format, out + i, block, len);
    }
  });
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  detail::parallel_elements(n, kCostPerElement, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i += kBlock) {
      gelu_grad_values(dinp + i, inp + i, dout + i, std::min(kBlock, e - i));
    }
  });
}

// Threads own column ranges as in bias_backward and walk them row by row (going down the rows
// of one narrow block instead defeats the prefetcher: 1.6x slower); each block's gradient stays
// in L1 between its three uses.
void gelu_backward_bias(float* dbias, uint16_t* dinp_half, Half format, const float* inp, const float* dout,
                        int64_t rows, int64_t cols) {
  if (rows == 0) return;
  detail::parallel_ranges(cols, detail::threads_for(rows * cols * kCostPerElement), [&](int64_t c0, int64_t c1) {
    alignas(64) float grad[kBlock];
    Eigen::ArrayXf acc(c1 - c0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = c0; b < c1; b += kBlock) {
        const int64_t len = std::min(kBlock, c1 - b), at = r * cols + b;
        gelu_grad_values(grad, inp + at, dout + at, len);
        auto sums = acc.segment(b - c0, len);
        if (r == 0) {
          sums = detail::ConstArrayMap(grad, len);
        } else {
          sums += detail::ConstArrayMap(grad, len);
        }
        cast_f32_to_half(format, dinp_half + at, grad, len);
      }
    }
    detail::ArrayMap(dbias + c0, c1 - c0) += acc;
  });
}

}  // namespace tessera::kernels::cpu
