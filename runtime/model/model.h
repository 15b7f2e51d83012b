// A model (or one pipeline stage of it): the layers of a LayerGraph in [first, last), built
// for this rank's tensor-parallel shard.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "partitioner/layer_graph.h"
#include "core/config.h"
#include "runtime/model/layer.h"
#include "runtime/model/layer_hooks.h"
#include "runtime/model/layer_registry.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

class Model {
 public:
  // Builds layers [first, last) of the graph (last = -1: to the end). selective_recompute:
  // transformer blocks drop their attention probabilities after forward and recompute them
  // in backward. custom_layers builds the graph's LayerKind::Custom nodes (borrowed; needed
  // only while constructing). on_built, when given, sees each layer as soon as it is built (and
  // tied), before the next is: ZeRO-3 shards it there, so no rank ever holds all layers whole.
  Model(const ModelConfig& config, const LayerGraph& graph, TpGroup tp, uint64_t seed, int first = 0,
        int last = -1, bool selective_recompute = false, const LayerRegistry* custom_layers = nullptr,
        const std::function<void(Layer&)>& on_built = {});

  std::vector<std::unique_ptr<Layer>>& layers() { return layers_; }
  std::vector<Parameter*> parameters();
  Parameter* find(const std::string& name);  // null when not on this rank
  void zero_grad();
  const LayerGraph& graph() const { return graph_; }
  // Calls `hooks` (borrowed; null: none) around every layer's forward and backward, layer i of
  // this model reported as first_index + i.
  void set_hooks(LayerHooks* hooks, int first_index) {
    hooks_ = hooks;
    hooks_first_ = first_index;
  }

  // Runs one microbatch through every layer; returns the last layer's output (the loss [1]
  // when this is the whole model).
  Tensor forward(const Tensor& x, const MicrobatchContext& ctx);
  // Backward through every layer in reverse; returns d(input of the first layer). When given,
  // after_layer(i) runs once layer i's gradients are complete (for overlapped communication).
  Tensor backward(const Tensor& dy, const MicrobatchContext& ctx,
                  const std::function<void(int)>& after_layer = {});

 private:
  LayerGraph graph_;
  std::vector<std::unique_ptr<Layer>> layers_;
  LayerHooks* hooks_ = nullptr;
  int hooks_first_ = 0;
};

}  // namespace tessera
