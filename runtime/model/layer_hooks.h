// Calls around each layer's forward and backward, with the layer's index across the rank's
// chunks: how ZeRO-3 gathers a layer's parameters just before it runs and frees them after,
// and how ZeRO-2/3 reduce-scatter a layer's gradients as soon as its backward is done
// (runtime/train/zero_units.h). A Model without hooks calls nothing.
#pragma once

namespace tessera {

class LayerHooks {
 public:
  virtual ~LayerHooks() = default;
  virtual void before_forward(int layer) = 0;
  virtual void after_forward(int layer) = 0;
  virtual void before_backward(int layer) = 0;
  // The layer's parameter gradients for this microbatch are complete.
  virtual void after_backward(int layer) = 0;
};

}  // namespace tessera
