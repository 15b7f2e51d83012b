// User-defined layers inside a Model: the embedding program registers a factory per custom
// layer type and passes the registry to the Model (or Trainer), which builds each
// LayerKind::Custom node of the layer graph with it. There is no global registry.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "partitioner/layer_graph.h"
#include "core/config.h"
#include "runtime/model/layer.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

// What a factory gets to build one custom layer of the graph.
struct CustomLayerArgs {
  const LayerSpec& spec;      // name (prefix of its parameter names), widths, custom_type
  const ModelConfig& model;
  TpGroup tp;                 // the layer is replicated over tp; with sequence parallelism it
                              // sees tp.outside_rows(B * T) rows and its parameters need
                              // sequence_parallel_grad = tp.sequence_sharded()
  uint64_t seed;              // train.seed: make_parameter(..., seed, ...) for layout-free init
};

using LayerFactory = std::function<std::unique_ptr<Layer>(const CustomLayerArgs&)>;

class LayerRegistry {
 public:
  // Registers the factory of a custom layer type; a type registered twice is an InputError.
  LayerRegistry& add(const std::string& type, LayerFactory factory);
  bool contains(const std::string& type) const { return factories_.count(type) > 0; }
  std::vector<std::string> types() const;
  // Builds the node; InputError when its type is not registered. Checks that the layer's
  // parameter names start with "<spec.name>." (checkpoints find parameters by name).
  std::unique_ptr<Layer> build(const CustomLayerArgs& args) const;

 private:
  std::map<std::string, LayerFactory> factories_;
};

}  // namespace tessera
