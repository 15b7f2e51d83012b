// The layout rules: one predicate per rule, each building its structured violation.
#include "partitioner/layout_rules.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <numeric>

#include "core/error.h"
#include "partitioner/layer_graph.h"

namespace tessera {
namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// "tp = 8 > heads 4" when tp exceeds the size, else "heads 6 not divisible by tp = 4".
std::string tp_brief(const char* what, int64_t n, int tp) {
  if (tp > n) return fmt::format("tp = {} > {} {}", tp, what, n);
  return fmt::format("{} {} not divisible by tp = {}", what, n, tp);
}

void check_schedule(const LayoutFacts& l, std::vector<LayoutViolation>& out) {
  const std::string schedule = quoted(schedule_name(l.schedule));
  if (l.schedule == ScheduleKind::Interleaved) {
    if (l.virtual_stages <= 1) {
      out.push_back({LayoutRule::InterleavedNeedsVirtualStages, "parallel.schedule", schedule,
                     "needs parallel.virtual_stages > 1", "interleaved needs virtual stages > 1"});
    }
    if (l.pp <= 1) {
      out.push_back({LayoutRule::InterleavedNeedsPipeline, "parallel.schedule", schedule,
                     "needs parallel.pipeline_model_parallel_size > 1 (use 1f1b)", "interleaved needs pp >= 2"});
    }
  } else if (l.virtual_stages != 1) {
    out.push_back({LayoutRule::VirtualStagesNeedInterleaved, "parallel.virtual_stages",
                   std::to_string(l.virtual_stages), "must be 1 unless parallel.schedule is interleaved",
                   "virtual stages > 1 need the interleaved schedule"});
  }
}

void check_tensor_parallel(const ModelConfig& m, const LayoutFacts& l, std::vector<LayoutViolation>& out) {
  const int tp = l.tp;
  const std::string by_tp = fmt::format("must be divisible by parallel.tensor_model_parallel_size = {}", tp);
  auto divides = [&](LayoutRule rule, const char* key, const char* what, int64_t n, int64_t shown) {
    if (n % tp != 0) out.push_back({rule, key, std::to_string(shown), by_tp, tp_brief(what, n, tp)});
  };
  if (m.arch == "gpt" || m.arch == "llama") {
    divides(LayoutRule::HeadsDivisibleByTp, "model.num_attention_heads", "heads", m.num_attention_heads,
            m.num_attention_heads);
    // llama's key/value groups divide the heads; tp may divide the heads but not the groups.
    if (m.arch == "llama" && m.num_attention_heads % tp == 0 && query_groups(m) % tp != 0) {
      out.push_back({LayoutRule::QueryGroupsDivisibleByTp, "model.num_query_groups", std::to_string(query_groups(m)),
                     by_tp + " (key/value groups are split over tensor-parallel ranks, not replicated)",
                     tp_brief("key/value groups", query_groups(m), tp)});
    }
    divides(LayoutRule::HiddenDivisibleByTp, "model.hidden_size", "hidden_size", m.hidden_size, m.hidden_size);
    divides(LayoutRule::FfnDivisibleByTp, "model.ffn_hidden_size", "ffn_hidden_size", ffn_size(m),
            m.ffn_hidden_size);
  } else {
    divides(LayoutRule::HiddenDivisibleByTp, "model.hidden_size", "hidden_size", m.hidden_size, m.hidden_size);
  }
  if (l.sequence_parallel && m.seq_length % tp != 0) {
    out.push_back({LayoutRule::SequenceDivisibleByTp, "model.seq_length", std::to_string(m.seq_length),
                   by_tp + " with parallel.sequence_parallel",
                   fmt::format("seq_length {} not divisible by tp = {}", m.seq_length, tp)});
  }
}

void check_stages(const ModelConfig& m, const LayoutFacts& l, std::vector<LayoutViolation>& out) {
  if (m.arch == "llama" && !m.untie_embeddings_and_output_weights && l.pp > 1) {
    out.push_back({LayoutRule::TiedEmbeddingsOneStage, "model.untie_embeddings_and_output_weights", "false",
                   "must be true when parallel.pipeline_model_parallel_size > 1 (tied embedding and output weights "
                   "need the embedding and the head on one stage)",
                   "tied embedding and output weights need pp = 1"});
  }
  const int64_t stages = int64_t{l.pp} * l.virtual_stages;
  const int layers = graph_layer_count(m, l.custom_layers);
  if (stages > layers) {
    out.push_back({LayoutRule::StagesAtMostLayers, "parallel.pipeline_model_parallel_size", std::to_string(l.pp),
                   fmt::format("pipeline_model_parallel_size * virtual_stages = {} stages is more than {}", stages,
                               graph_layers_phrase(m, l.custom_layers)),
                   fmt::format("pp x v = {} stages > {} layers (num_layers {} + embedding + head{})", stages, layers,
                               m.num_layers,
                               l.custom_layers > 0 ? fmt::format(" + {} custom", l.custom_layers) : "")});
  }
  if (l.partition.empty()) return;
  const std::string value = fmt::format("[{}]", fmt::join(l.partition, ", "));
  const std::string partition_brief =
      fmt::format("partition must have pp x v = {} entries summing to {} layers", stages, layers);
  if (static_cast<int64_t>(l.partition.size()) != stages) {
    out.push_back({LayoutRule::PartitionEntries, "parallel.partition", value,
                   fmt::format("must have pipeline_model_parallel_size * virtual_stages = {} entries, not {}", stages,
                               l.partition.size()),
                   partition_brief});
  }
  const int sum = std::accumulate(l.partition.begin(), l.partition.end(), 0);
  if (sum != layers) {
    out.push_back({LayoutRule::PartitionSum, "parallel.partition", value,
                   fmt::format("must sum to {}, not {}", graph_layers_phrase(m, l.custom_layers), sum),
                   partition_brief});
  }
}

void check_batch(const LayoutFacts& l, std::vector<LayoutViolation>& out) {
  if (l.dp <= 0 || l.global_batch_size <= 0) return;
  const int64_t micro = l.micro_batch_size, dp = l.dp;
  if (l.global_batch_size % (micro * dp) != 0) {
    const std::string auto_note =
        l.dp_auto ? fmt::format(" (data_parallel_size auto = world size {} / {})", l.world, int64_t{l.tp} * l.pp)
                  : "";
    out.push_back({LayoutRule::BatchDivisibleByMicroBatchTimesDp, "train.global_batch_size",
                   std::to_string(l.global_batch_size),
                   fmt::format("must be divisible by micro_batch_size * data_parallel_size = {} * {} = {}{}", micro,
                               dp, micro * dp, auto_note),
                   fmt::format("global batch {} not divisible by micro batch {} x dp {}", l.global_batch_size, micro,
                               dp)});
    return;
  }
  const int64_t microbatches = l.global_batch_size / (micro * dp);
  if (l.schedule == ScheduleKind::Interleaved && microbatches % l.pp != 0) {
    out.push_back({LayoutRule::InterleavedMicrobatches, "parallel.schedule", quoted(schedule_name(l.schedule)),
                   fmt::format("needs the number of microbatches (global_batch_size / (micro_batch_size * "
                               "data_parallel_size) = {}) to be divisible by pipeline_model_parallel_size = {}",
                               microbatches, l.pp),
                   fmt::format("interleaved needs microbatches divisible by pp {}, not {}", l.pp, microbatches)});
  }
}

}  // namespace

LayoutFacts layout_facts(const Config& c, int world, int custom_layers) {
  const ParallelConfig& p = c.parallel;
  LayoutFacts l;
  l.tp = p.tensor_model_parallel_size;
  l.pp = p.pipeline_model_parallel_size;
  l.virtual_stages = p.virtual_stages;
  l.schedule = parse_schedule(p.schedule);
  l.sequence_parallel = p.sequence_parallel;
  l.partition = p.partition;
  l.custom_layers = custom_layers;
  if (world > 0) {
    l.dp = resolve_data_parallel_size(p.data_parallel_size, world, l.tp, l.pp);
    l.dp_auto = p.data_parallel_size == 0;
    l.world = world;
  }
  l.micro_batch_size = c.train.micro_batch_size;
  l.global_batch_size = c.train.global_batch_size;
  return l;
}

int graph_layer_count(const ModelConfig& m, int custom_layers) { return m.num_layers + 2 + custom_layers; }

std::string graph_layers_phrase(const ModelConfig& m, int custom_layers) {
  return fmt::format("the model's {} layers (model.num_layers = {} plus embedding{})",
                     graph_layer_count(m, custom_layers), m.num_layers,
                     custom_layers == 0 ? std::string(" and head")
                                        : fmt::format(", head and {} custom layer{}", custom_layers,
                                                      custom_layers == 1 ? "" : "s"));
}

std::vector<LayoutViolation> layout_violations(const ModelConfig& model, const LayoutFacts& layout) {
  std::vector<LayoutViolation> out;
  check_schedule(layout, out);
  check_tensor_parallel(model, layout, out);
  check_stages(model, layout, out);
  check_batch(layout, out);
  return out;
}

std::optional<LayoutViolation> first_layout_violation(const ModelConfig& model, const LayoutFacts& layout) {
  std::vector<LayoutViolation> all = layout_violations(model, layout);
  if (all.empty()) return std::nullopt;
  return all.front();
}

void require_valid_layout(const ModelConfig& model, const LayoutFacts& layout, const std::string& source) {
  const std::optional<LayoutViolation> v = first_layout_violation(model, layout);
  TESSERA_REQUIRE(!v, "{}{}", source.empty() ? "" : source + ": ", v ? v->line() : "");
}

int resolve_data_parallel_size(int configured, int world, int tp, int pp) {
  if (configured > 0) return configured;
  return world / (tp * pp);
}

std::optional<LayoutViolation> model_shape_violation(const ModelConfig& m) {
  const bool attention = m.arch == "gpt" || m.arch == "llama";
  // With an explicit head_dim (a model whose heads were pruned) the attention width is
  // heads * head_dim and need not divide the hidden size.
  if (attention && m.head_dim == 0 && m.hidden_size % m.num_attention_heads != 0) {
    return LayoutViolation{LayoutRule::HiddenDivisibleByHeads, "model.hidden_size", std::to_string(m.hidden_size),
                           fmt::format("must be divisible by model.num_attention_heads = {}", m.num_attention_heads),
                           fmt::format("hidden_size {} not divisible by heads {}", m.hidden_size,
                                       m.num_attention_heads)};
  }
  const char* norm = m.arch == "gpt" ? "layernorm" : m.arch == "llama" ? "rmsnorm" : nullptr;
  if (norm != nullptr && m.normalization != norm) {
    return LayoutViolation{LayoutRule::NormalizationOfArch, "model.normalization", quoted(m.normalization),
                           fmt::format("must be {} for model.arch: {}", norm, m.arch),
                           fmt::format("{} needs {}", m.arch, norm)};
  }
  if (m.arch != "llama") return std::nullopt;
  if (m.num_attention_heads % query_groups(m) != 0) {
    return LayoutViolation{LayoutRule::HeadsDivisibleByQueryGroups, "model.num_query_groups",
                           std::to_string(query_groups(m)),
                           fmt::format("must divide model.num_attention_heads = {}", m.num_attention_heads),
                           fmt::format("query groups {} do not divide heads {}", query_groups(m),
                                       m.num_attention_heads)};
  }
  if (attention_head_dim(m) % 2 != 0) {
    return LayoutViolation{LayoutRule::EvenHeadWidth, "model.hidden_size", std::to_string(m.hidden_size),
                           "must give an even head width (hidden_size / num_attention_heads) for rotary embeddings",
                           fmt::format("head width {} is odd (rotary embeddings)", attention_head_dim(m))};
  }
  return std::nullopt;
}

}  // namespace tessera
