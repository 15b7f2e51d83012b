// The mixed-precision policy: which dtype the GEMMs read (compute), which the weights are kept in
// (masters, always fp32 here), which the data-parallel gradient reduction uses, and whether the
// loss is scaled (fp16). One owner: layers, the trainer and the planner ask this struct.
#pragma once

#include <string>

#include "runtime/tensor.h"

namespace tessera {

enum class Precision { FP32, BF16, FP16 };

// "fp32" | "bf16" | "fp16"; anything else is an InputError naming train.precision.
Precision parse_precision(const std::string& name);
std::string precision_name(Precision precision);

struct PrecisionPolicy {
  Precision precision = Precision::FP32;
  // GEMM inputs and the activations sent between pipeline stages and through tensor-parallel
  // collectives. Norm statistics, softmax, the loss and the gradient norm stay fp32.
  DType compute_dtype() const;
  // Masters and optimizer state.
  DType master_dtype() const { return DType::F32; }
  bool low_precision() const { return precision != Precision::FP32; }
  // fp16's 5-bit exponent underflows small gradients: the loss is scaled (dynamic loss scaling).
  bool loss_scaling() const { return precision == Precision::FP16; }
};

}  // namespace tessera
