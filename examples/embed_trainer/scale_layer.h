// A user-defined layer: y = s * x with one learned scalar s (initialised to 1). It shows the
// whole Layer contract: activations saved per microbatch for backward, the parameter gradient
// accumulated (+=) so microbatches add up, the input gradient written (=).
#pragma once

#include <string>

#include "runtime/model/layer.h"

class ScaleLayer : public tessera::Layer {
 public:
  // width: features of the [rows, width] activations it scales.
  ScaleLayer(std::string name, int64_t width, uint64_t seed);

  const std::string& name() const override { return name_; }
  tessera::Tensor forward(const tessera::Tensor& x, const tessera::MicrobatchContext& ctx) override;
  tessera::Tensor backward(const tessera::Tensor& dy, const tessera::MicrobatchContext& ctx) override;
  std::vector<tessera::Parameter*> parameters() override { return {&scale_}; }
  tessera::Shape input_shape(int64_t B, int64_t T) const override { return {B * T, width_}; }
  tessera::Shape output_shape(int64_t B, int64_t T) const override { return {B * T, width_}; }
  int saved_count() const override { return saved_.size(); }

  float value() const { return scale_.value.f32()[0]; }

 private:
  std::string name_;
  int64_t width_;
  tessera::Parameter scale_;
  tessera::ActivationStash<tessera::Tensor> saved_;  // the input x, per microbatch
};
