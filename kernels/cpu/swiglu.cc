// CPU SwiGLU forward/backward, vectorised through Eigen's array exp.
#include "kernels/swiglu.h"

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {
namespace {

// exp, a division and a few multiplies per element.
constexpr int64_t kCostPerElement = 16;

}  // namespace

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  detail::parallel_elements(n, kCostPerElement, [&](int64_t b, int64_t e) {
    const detail::ConstArrayMap g(gate + b, e - b), u(up + b, e - b);
    detail::ArrayMap(out + b, e - b) = g / (1.0f + (-g).exp()) * u;
  });
}

// With s = sigmoid(g): d silu(g)/dg = s (1 + g (1 - s)), so
//   dgate = dout * up * s (1 + g (1 - s)),  dup = dout * g s.
void swiglu_backward(float* dgate, float* dup, const float* gate, const float* up, const float* dout,
                     int64_t n) {
  detail::parallel_elements(n, kCostPerElement, [&](int64_t b, int64_t e) {
    const int64_t len = e - b;
    const detail::ConstArrayMap g(gate + b, len), u(up + b, len), dy(dout + b, len);
    const Eigen::ArrayXf s = 1.0f / (1.0f + (-g).exp());
    detail::ArrayMap(dgate + b, len) = dy * u * s * (1.0f + g * (1.0f - s));
    detail::ArrayMap(dup + b, len) = dy * g * s;
  });
}

}  // namespace tessera::kernels::cpu
