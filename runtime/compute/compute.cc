// Compute: the mixed-precision rules between layers and the Backend.
#include "runtime/compute/compute.h"

#include "runtime/compute/cpu_backend.h"
#include "runtime/device/device_memory.h"

namespace tessera {

Compute::Compute(std::unique_ptr<Backend> backend, PrecisionPolicy policy)
    : backend_(std::move(backend)), policy_(policy) {
  TESSERA_CHECK(backend_ != nullptr, "Compute needs a backend");
}

Tensor Compute::full(const Shape& shape, float value) const { return to_device(Tensor::full(shape, value), device()); }

Tensor Compute::to_compute(const Tensor& x) const {
  if (x.dtype() == compute_dtype()) return x;
  Tensor c = Tensor::empty(x.shape(), compute_dtype(), x.device());
  backend_->cast(x, c);
  return c;
}

Tensor Compute::to_f32(const Tensor& x) const {
  if (x.dtype() == DType::F32) return x;
  Tensor w = Tensor::empty(x.shape(), DType::F32, x.device());
  backend_->cast(x, w);
  return w;
}

const Tensor& Compute::weight(Parameter& p) const {
  if (!policy_.low_precision()) return p.value;
  if (!p.compute_copy.defined() || p.compute_copy.dtype() != compute_dtype()) {
    p.compute_copy = Tensor::empty(p.value.shape(), compute_dtype(), p.value.device());
    p.compute_copy_version = 0;
  }
  if (p.compute_copy_version != weights_version_) {
    backend_->cast(p.value, p.compute_copy);
    p.compute_copy_version = weights_version_;
  }
  return p.compute_copy;
}

void Compute::linear_forward(Tensor& out, const Tensor& x_c, Parameter& weight, Parameter* bias) const {
  backend_->matmul({x_c, false, this->weight(weight), true, out, bias ? &bias->value : nullptr, false});
}

void Compute::linear_backward(Tensor* dx, Parameter& weight, Parameter* bias, const Tensor& dout,
                              const Tensor& x_c) const {
  Tensor dout_c;
  if (bias != nullptr && policy_.low_precision() && dout.dtype() == DType::F32) {
    dout_c = Tensor::empty(dout.shape(), compute_dtype(), dout.device());
    backend_->bias_backward_cast(bias->grad, dout_c, dout);  // one pass over dout, not two
  } else {
    if (bias != nullptr) backend_->bias_backward(bias->grad, dout);
    dout_c = to_compute(dout);
  }
  weight_gemms(dx, weight, dout_c, x_c);
}

void Compute::gelu_linear_backward(Tensor* dx, Parameter& weight, Parameter& bias, const Tensor& pre,
                                   const Tensor& dact, const Tensor& x_c) const {
  if (!policy_.low_precision() || pre.dtype() != DType::F32 || dact.dtype() != DType::F32) {
    Tensor dpre = empty(pre.shape());
    backend_->gelu_backward(dpre, pre, dact);
    linear_backward(dx, weight, &bias, dpre, x_c);
    return;
  }
  Tensor dpre_c = Tensor::empty(pre.shape(), compute_dtype(), pre.device());
  backend_->gelu_backward_bias_cast(bias.grad, dpre_c, pre, dact);
  weight_gemms(dx, weight, dpre_c, x_c);
}

void Compute::weight_gemms(Tensor* dx, Parameter& weight, const Tensor& dout_c, const Tensor& x_c) const {
  if (dx != nullptr) backend_->matmul({dout_c, false, this->weight(weight), false, *dx, nullptr, false});
  const bool first_contribution = weight.grad_zero;
  weight.grad_zero = false;
  backend_->matmul({dout_c, true, x_c, false, weight.grad, nullptr, !first_contribution});
}

std::unique_ptr<Compute> make_cpu_compute(Precision precision, const std::string& gemm) {
  TESSERA_REQUIRE(gemm == "onednn" || gemm == "eigen", "train.gemm = {}: must be onednn or eigen", gemm);
  TESSERA_REQUIRE(gemm == "onednn" || precision == Precision::FP32,
                  "train.gemm = eigen: runs fp32 only (train.precision = {} needs onednn)", precision_name(precision));
  auto backend = std::make_unique<CpuBackend>(gemm == "eigen" ? CpuGemm::Eigen : CpuGemm::OneDnn);
  return std::make_unique<Compute>(std::move(backend), PrecisionPolicy{precision});
}

}  // namespace tessera
