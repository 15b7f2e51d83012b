// The layout rules, with one owner: which (tp, pp, virtual stages, schedule, dp, micro batch,
// partition) a model can run under. Each rule is a predicate that returns a structured
// violation: the config key it blames, that key's value, the rule in config terms (naming the
// other keys and their values) and the planner's short form. The config validator
// (launcher/config_checks.cc, which adds the file and --set provenance), the layout search,
// the Trainer and the checkpoint manifest reader all call these, so a rule changes in one place.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "partitioner/schedule.h"

namespace tessera {

enum class LayoutRule {
  HiddenDivisibleByHeads,  // the model's own shape (gpt, llama without an explicit head_dim)
  NormalizationOfArch,     // gpt: layernorm, llama: rmsnorm
  HeadsDivisibleByQueryGroups,  // llama
  EvenHeadWidth,           // llama: rotary embeddings rotate pairs
  InterleavedNeedsVirtualStages,
  InterleavedNeedsPipeline,
  VirtualStagesNeedInterleaved,
  HeadsDivisibleByTp,
  QueryGroupsDivisibleByTp,  // llama: key/value groups are split over tp, never replicated
  HiddenDivisibleByTp,
  FfnDivisibleByTp,
  SequenceDivisibleByTp,  // with sequence parallelism
  StagesAtMostLayers,
  TiedEmbeddingsOneStage,  // llama: tied embedding and output weights need pp 1
  PartitionEntries,
  PartitionSum,
  BatchDivisibleByMicroBatchTimesDp,
  InterleavedMicrobatches,
};

struct LayoutViolation {
  LayoutRule rule;
  std::string key;    // the config key blamed: "model.num_attention_heads"
  std::string value;  // its value as a config shows it: "4", "'interleaved'", "[2, 3]"
  std::string rule_text;  // "must be divisible by parallel.tensor_model_parallel_size = 8"
  std::string brief;      // the planner's rejection: "tp = 8 > heads 4"
  // "model.num_attention_heads = 4: must be divisible by ..." (a config file's error names
  // its source before this).
  std::string line() const { return key + " = " + value + ": " + rule_text; }
};

// One layout of one model, as far as it is known: dp 0 when no world size is given (the rules
// about batches are then not checked), an empty partition for auto.
struct LayoutFacts {
  int tp = 1, pp = 1, virtual_stages = 1;
  ScheduleKind schedule = ScheduleKind::OneFOneB;
  bool sequence_parallel = false;
  std::vector<int> partition;
  int custom_layers = 0;  // an embedding program's layers, placed into the layer graph
  int dp = 0;
  bool dp_auto = false;   // dp was resolved from the world size (parallel.data_parallel_size auto)
  int world = 0;          // with dp_auto: the world size it came from
  int micro_batch_size = 1, global_batch_size = 0;
};

// The facts of a config's own layout; dp from the world (0: unknown) and the config's
// parallel.data_parallel_size (0: auto).
LayoutFacts layout_facts(const Config& config, int world = 0, int custom_layers = 0);

// The layer graph's layers: num_layers blocks (or Linear layers), the embedding and the head,
// and the custom layers an embedding program places into it.
int graph_layer_count(const ModelConfig& model, int custom_layers = 0);
// "the model's 6 layers (model.num_layers = 4 plus embedding and head)"
std::string graph_layers_phrase(const ModelConfig& model, int custom_layers = 0);

// Every rule the layout breaks, in the order a config is checked (schedule, tp, stages,
// partition, then the batch rules that need dp).
std::vector<LayoutViolation> layout_violations(const ModelConfig& model, const LayoutFacts& layout);
// The first of them, or nullopt.
std::optional<LayoutViolation> first_layout_violation(const ModelConfig& model, const LayoutFacts& layout);
// Throws InputError with the first violation's line(), prefixed by `source: ` when given.
void require_valid_layout(const ModelConfig& model, const LayoutFacts& layout, const std::string& source = "");

// The data-parallel size of a world: parallel.data_parallel_size, or for auto (0) the world
// divided by tp * pp. Does not check that it divides (the config validator does).
int resolve_data_parallel_size(int configured, int world, int tp, int pp);

// The model's own shape rules, the first one broken: heads divide hidden (gpt and llama without
// an explicit head_dim), the arch's normalization, and for llama the query groups dividing the
// heads and an even head width.
std::optional<LayoutViolation> model_shape_violation(const ModelConfig& model);

}  // namespace tessera
