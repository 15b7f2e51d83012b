// A Linear layer followed by an activation (GELU or ReLU): the building block of the MLP model.
// Tensor parallel as Megatron's MLP: a Column layer splits its outputs over the tp group (input
// replicated, output sharded), the Row layer after it splits its inputs (input sharded, partial
// outputs all-reduced); a Replicated layer is computed whole on every rank.
#pragma once

#include "runtime/model/layer.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

enum class Activation { Gelu, Relu };
enum class TpSplit { Replicated, Column, Row };

class LinearLayer : public Layer {
 public:
  LinearLayer(std::string name, int64_t in_features, int64_t out_features, Activation activation,
              TpSplit split, float init_std, uint64_t seed, TpGroup tp);
  const std::string& name() const override { return name_; }
  Tensor forward(const Tensor& x, const MicrobatchContext& ctx) override;
  Tensor backward(const Tensor& dy, const MicrobatchContext& ctx) override;
  std::vector<Parameter*> parameters() override { return {&weight_, &bias_}; }
  int saved_count() const override { return stash_.size(); }
  // A Row layer takes the Column layer's sharded features on all rows; everything else
  // lives on the (sequence-sharded) rows outside the tp region.
  Shape input_shape(int64_t B, int64_t T) const override {
    return {split_ == TpSplit::Row ? B * T : tp_.outside_rows(B * T), in_};
  }
  Shape output_shape(int64_t B, int64_t T) const override {
    return {split_ == TpSplit::Column ? B * T : tp_.outside_rows(B * T), out_};
  }

 private:
  struct Saved {
    Tensor x, pre;
  };
  std::string name_;
  int64_t in_, out_;              // local (sharded) widths
  Activation activation_;
  TpSplit split_;
  TpGroup tp_;
  Parameter weight_, bias_;
  ActivationStash<Saved> stash_;
};

}  // namespace tessera
