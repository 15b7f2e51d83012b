// Parsing and the dtype mapping of the precision policy.
#include "runtime/compute/precision.h"

namespace tessera {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "bf16") return Precision::BF16;
  if (name == "fp16") return Precision::FP16;
  throw InputError("train.precision = " + name + ": must be one of fp32, bf16, fp16");
}

std::string precision_name(Precision precision) {
  switch (precision) {
    case Precision::FP32: return "fp32";
    case Precision::BF16: return "bf16";
    case Precision::FP16: return "fp16";
  }
  return "?";
}

DType PrecisionPolicy::compute_dtype() const {
  switch (precision) {
    case Precision::BF16: return DType::BF16;
    case Precision::FP16: return DType::F16;
    case Precision::FP32: break;
  }
  return DType::F32;
}

}  // namespace tessera
