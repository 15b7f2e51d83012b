// CUDA fused AdamW over a flat buffer, the device twin of kernels/adamw.h (PyTorch's
// torch.optim.AdamW single-tensor arithmetic). One launch updates every parameter of a
// FlatParameters buffer. Host launchers enqueue on the given stream and return without
// synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

// step is 1-based (bias correction). param -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * param),
// with the decay applied to the parameter before the Adam update, as PyTorch does.
// param_bf16, when not null, receives the updated parameters rounded to bfloat16 (bit
// patterns) in the same pass: the compute copy of bf16 mixed precision.
void adamw_update(float* param, uint16_t* param_bf16, const float* grad, float* m, float* v,
                  int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                  int64_t step, float grad_scale, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
