// LayerRegistry: custom layer factories by type name.
#include "runtime/model/layer_registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace tessera {

LayerRegistry& LayerRegistry::add(const std::string& type, LayerFactory factory) {
  TESSERA_REQUIRE(!type.empty() && factory, "LayerRegistry::add: needs a type name and a factory");
  TESSERA_REQUIRE(factories_.emplace(type, std::move(factory)).second,
                  "LayerRegistry::add: custom layer type '{}' is registered twice", type);
  return *this;
}

std::vector<std::string> LayerRegistry::types() const {
  std::vector<std::string> out;
  for (const auto& [type, factory] : factories_) out.push_back(type);
  return out;
}

std::unique_ptr<Layer> LayerRegistry::build(const CustomLayerArgs& args) const {
  const LayerSpec& spec = args.spec;
  const auto it = factories_.find(spec.custom_type);
  TESSERA_REQUIRE(it != factories_.end(), "layer '{}': custom layer type '{}' is not in the LayerRegistry (types: [{}])",
                  spec.name, spec.custom_type, fmt::join(types(), ", "));
  std::unique_ptr<Layer> layer = it->second(args);
  TESSERA_REQUIRE(layer != nullptr, "layer '{}': the factory of '{}' returned no layer", spec.name, spec.custom_type);
  TESSERA_REQUIRE(layer->name() == spec.name, "layer '{}': the factory of '{}' built a layer named '{}'", spec.name,
                  spec.custom_type, layer->name());
  const Shape in = layer->input_shape(1, args.model.seq_length), out = layer->output_shape(1, args.model.seq_length);
  TESSERA_REQUIRE(in.size() == 2 && out.size() == 2 && in[1] == spec.in_features && out[1] == spec.out_features,
                  "layer '{}': the layer maps {} to {} per sequence, the graph says [rows, {}] to [rows, {}]", spec.name,
                  shape_string(in), shape_string(out), spec.in_features, spec.out_features);
  for (const Parameter* p : layer->parameters()) {
    TESSERA_REQUIRE(p->name.rfind(spec.name + ".", 0) == 0,
                    "layer '{}': parameter '{}' must be named '{}.<something>' (checkpoints find parameters by name)",
                    spec.name, p->name, spec.name);
  }
  return layer;
}

}  // namespace tessera
