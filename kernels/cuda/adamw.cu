// CUDA AdamW: one element per thread in a grid-stride loop, with the scalars formed on the host
// exactly as the CPU kernel forms them.
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/cuda/adamw_cuda.h"
#include "kernels/cuda/common.cuh"

namespace tessera::kernels::cuda {
namespace {

struct AdamScalars {
  float step_size;     // lr / bc1
  float bc2_sqrt;      // sqrt(1 - beta2^step)
  float decay;         // 1 - lr * weight_decay
  float one_minus_b1;
  float beta2;
  float one_minus_b2;
  float eps;
  float grad_scale;    // the global-norm clip coefficient, applied as its own multiply
  bool lerp_from_start;
};

// m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g^2; p = p decay - step_size m / (sqrt(v)/bc2 + eps).
// sqrtf and the divisions are IEEE-rounded (nvcc's default without --use_fast_math); nvcc may
// contract a multiply and an add into an FMA, so results can differ from the CPU in the last bit.
__global__ void adamw_kernel(float* param, __nv_bfloat16* param_bf16, const float* grad, float* m,
                             float* v, int64_t n, AdamScalars s) {
  for (int64_t i = detail::grid_start(); i < n; i += detail::grid_stride()) {
    const float g = grad[i] * s.grad_scale;
    float mi = m[i];
    mi = s.lerp_from_start ? mi + s.one_minus_b1 * (g - mi) : g - (g - mi) * (1.0f - s.one_minus_b1);
    const float vi = v[i] * s.beta2 + s.one_minus_b2 * g * g;
    const float p = param[i] * s.decay - s.step_size * (mi / (sqrtf(vi) / s.bc2_sqrt + s.eps));
    m[i] = mi;
    v[i] = vi;
    param[i] = p;
    if (param_bf16 != nullptr) param_bf16[i] = __float2bfloat16_rn(p);
  }
}

}  // namespace

void adamw_update(float* param, uint16_t* param_bf16, const float* grad, float* m, float* v,
                  int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                  int64_t step, float grad_scale, cudaStream_t stream) {
  TESSERA_CHECK(step >= 1, "adamw_update: step is 1-based, got {}", step);
  if (n <= 0) return;
  // PyTorch computes the bias corrections in double on the host and applies them as float
  // scalars; torch.lerp's two forms, chosen by the weight as it does, round differently.
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  AdamScalars s{};
  s.step_size = static_cast<float>(lr / bc1);
  s.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  s.decay = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  s.one_minus_b1 = static_cast<float>(1.0 - beta1);
  s.beta2 = beta2;
  s.one_minus_b2 = static_cast<float>(1.0 - beta2);
  s.eps = eps;
  s.grad_scale = grad_scale;
  s.lerp_from_start = s.one_minus_b1 < 0.5f;
  adamw_kernel<<<detail::blocks_for(n), detail::kThreads, 0, stream>>>(
      param, reinterpret_cast<__nv_bfloat16*>(param_bf16), grad, m, v, n, s);
  TESSERA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
