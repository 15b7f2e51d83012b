// A user-defined layer: y = s * x with one learned scalar s (initialised to 1). It shows the
// whole Layer contract: activations saved per microbatch for backward, the parameter gradient
// accumulated (+=) so microbatches add up, the input gradient written (=); and how it enters
// a Tessera model: a factory in a LayerRegistry, and a CustomLayerPlacement in the graph.
#pragma once

#include <string>

#include <tessera/tessera.h>

class ScaleLayer : public tessera::Layer {
 public:
  // width: features of the [rows, width] activations it scales. tp: it is replicated over the
  // tensor-parallel ranks; with sequence parallelism it sees only this rank's rows.
  ScaleLayer(std::string name, int64_t width, uint64_t seed, tessera::TpGroup tp);

  const std::string& name() const override { return name_; }
  tessera::Tensor forward(const tessera::Tensor& x, const tessera::MicrobatchContext& ctx) override;
  tessera::Tensor backward(const tessera::Tensor& dy, const tessera::MicrobatchContext& ctx) override;
  std::vector<tessera::Parameter*> parameters() override { return {&scale_}; }
  tessera::Shape input_shape(int64_t B, int64_t T) const override { return {tp_.outside_rows(B * T), width_}; }
  tessera::Shape output_shape(int64_t B, int64_t T) const override { return {tp_.outside_rows(B * T), width_}; }
  int saved_count() const override { return saved_.size(); }

 private:
  float value() const { return scale_.value.f32()[0]; }

  std::string name_;
  int64_t width_;
  tessera::TpGroup tp_;
  tessera::Parameter scale_;
  tessera::ActivationStash<tessera::Tensor> saved_;  // the input x, per microbatch
};

// Registers the type "scale" (ScaleLayer over the node's in_features).
void register_scale_layer(tessera::LayerRegistry& registry);

// A "scale" node named `name` after the layer `after`, with its costs for the partitioner:
// one parameter, 1 FLOP per value forward and 2 backward, the input saved.
tessera::CustomLayerPlacement scale_layer_after(const std::string& after, const std::string& name,
                                                int64_t width);
