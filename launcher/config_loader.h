// Loading a run config from YAML (plus --set overrides) into tessera::Config, validating it,
// and writing it back out. Every problem is a tessera::InputError whose message is one line
// naming the file, the dotted key, the value and the rule it breaks.
#pragma once

#include <string>
#include <vector>

#include "partitioner/layer_graph.h"
#include "core/config.h"

namespace tessera {

// Reads the YAML file at path, applies the overrides ("dotted.key=value", the value read as
// YAML: "train.optimizer.lr=3e-4", "parallel.partition=[3,2]", "log.trace=" for null),
// converts it to a Config, resolves defaults that depend on other fields (ffn_hidden_size 0
// -> 4 * hidden_size) and runs validate_config. Config::source is set to path.
Config load_config(const std::string& path, const std::vector<std::string>& overrides);

// The same from YAML text; source_name stands for the file in messages and Config::source.
Config parse_config_string(const std::string& yaml_text, const std::string& source_name,
                           const std::vector<std::string>& overrides = {});

// Every rule of a config that does not depend on the world size: each field's type and range,
// and the rules between fields (hidden_size % num_attention_heads, min_lr <= lr, heads and
// hidden size divisible by tensor_model_parallel_size, enough layers for the pipeline stages,
// an explicit partition that matches them, ...). For configs built in code; the loaders run it.
void validate_config(const Config& config);

// validate_config, then the rules that need the world size: world % (tp * pp) == 0, an
// explicit data_parallel_size equal to world / (tp * pp), global_batch_size divisible by
// micro_batch_size * dp, and for the interleaved schedule a number of microbatches divisible
// by pipeline_model_parallel_size. Run it on every rank before any work.
void validate_for_world(const Config& config, int world_size);

// validate_for_world for a program that places custom layers into the layer graph (the
// TrainerOptions::custom_layers it will train with): the pipeline stages and an explicit
// parallel.partition count them with the num_layers + 2 of the config.
void validate_with_custom_layers(const Config& config, int world_size,
                                 const std::vector<CustomLayerPlacement>& custom_layers);

// data_parallel_size for this world: the configured one, or world / (tp * pp) for auto.
// Assumes validate_for_world passed.
int resolved_data_parallel_size(const Config& config, int world_size);

// The resolved config as YAML, every field written out (auto stays auto), with a comment
// naming its source. parse_config_string reads it back to an equal Config. Used to save the
// config next to checkpoints and for `--print-config`.
std::string config_to_yaml(const Config& config);

}  // namespace tessera
