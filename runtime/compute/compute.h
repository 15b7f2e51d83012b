// Compute: the execution context layers run their math through — a Backend (the op table of
// one device) and the precision policy. Passed explicitly (MicrobatchContext::compute), never
// global. It owns the mixed-precision rules that sit between a layer and the ops:
//   - GEMM inputs in the compute dtype: activations are cast on the way in (and the cast copy
//     is what the layer saves for backward), weights come from a low-precision copy of the fp32
//     master made once per step;
//   - every GEMM accumulates and writes fp32, so norms, softmax, the loss and all gradients
//     stay fp32; weight gradients accumulate into the fp32 grads of the masters.
#pragma once

#include <memory>

#include "runtime/compute/backend.h"
#include "runtime/compute/precision.h"
#include "runtime/model/parameter.h"

namespace tessera {

class Compute {
 public:
  Compute(std::unique_ptr<Backend> backend, PrecisionPolicy policy);
  Backend& ops() const { return *backend_; }
  const PrecisionPolicy& policy() const { return policy_; }
  DType compute_dtype() const { return policy_.compute_dtype(); }
  // The device the layers' tensors live on: the backend's. Layers allocate through these, never
  // Tensor::empty's host default, so the same layer code runs on the CPU and on a GPU.
  Device device() const { return backend_->device(); }
  Tensor empty(const Shape& shape, DType dtype = DType::F32) const { return Tensor::empty(shape, dtype, device()); }
  // A tensor of `value`s on the device (made on the host and copied when the device is a GPU).
  Tensor full(const Shape& shape, float value) const;

  // x in the compute dtype (x itself when it already is): GEMM inputs, and activations moved
  // between ranks without arithmetic (pipeline sends, sequence-parallel gathers).
  Tensor to_compute(const Tensor& x) const;
  // x widened to fp32 (x itself when it is): a received activation before the next layer.
  Tensor to_f32(const Tensor& x) const;
  // The weight as a GEMM input: the master in fp32, else its low-precision copy, made from the
  // master on first use after invalidate_weight_copies().
  const Tensor& weight(Parameter& p) const;
  // Marks every low-precision weight copy stale; the trainer calls it whenever masters change
  // (after an optimizer step, a checkpoint load).
  void invalidate_weight_copies() { ++weights_version_; }

  // out [rows, out] = x_c [rows, in] * W^T (+ bias), W [out, in] as nn.Linear; x_c from to_compute.
  void linear_forward(Tensor& out, const Tensor& x_c, Parameter& weight, Parameter* bias) const;
  // dx = dout * W (skipped when dx is null), W.grad += dout^T x_c (written instead when
  // W.grad_zero: the first contribution since the grads were zeroed), bias.grad += colsum(dout).
  void linear_backward(Tensor* dx, Parameter& weight, Parameter* bias, const Tensor& dout, const Tensor& x_c) const;
  // linear_backward of a Linear whose output `pre` went through a GELU, from dact, the gradient
  // at the GELU's output: under mixed precision the GELU gradient is formed, summed into the
  // bias and rounded for the GEMMs in one pass, never stored in fp32.
  void gelu_linear_backward(Tensor* dx, Parameter& weight, Parameter& bias, const Tensor& pre, const Tensor& dact,
                            const Tensor& x_c) const;

 private:
  // dx = dout_c * W, W.grad (+)= dout_c^T x_c: the two GEMMs of a Linear's backward.
  void weight_gemms(Tensor* dx, Parameter& weight, const Tensor& dout_c, const Tensor& x_c) const;

  std::unique_ptr<Backend> backend_;
  PrecisionPolicy policy_;
  uint64_t weights_version_ = 1;
};

// The CPU compute of a run: oneDNN GEMMs (Eigen when gemm = "eigen") in the given precision.
std::unique_ptr<Compute> make_cpu_compute(Precision precision, const std::string& gemm = "onednn");

}  // namespace tessera
