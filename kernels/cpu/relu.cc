// CPU ReLU forward/backward.
#include "kernels/relu.h"

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {

void relu_forward(float* out, const float* inp, int64_t n) {
  detail::parallel_elements(n, 1, [&](int64_t b, int64_t e) {
    detail::ArrayMap(out + b, e - b) = detail::ConstArrayMap(inp + b, e - b).max(0.0f);
  });
}

void relu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  detail::parallel_elements(n, 1, [&](int64_t b, int64_t e) {
    detail::ArrayMap(dinp + b, e - b) = (detail::ConstArrayMap(inp + b, e - b) > 0.0f)
                                            .select(detail::ConstArrayMap(dout + b, e - b), 0.0f);
  });
}

}  // namespace tessera::kernels::cpu
