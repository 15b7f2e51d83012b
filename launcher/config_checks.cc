// The rules between config fields, and those that need the world size. Each names the key
// it blames, its value, and the other values involved.
#include <fmt/format.h>

#include <cstdint>
#include <filesystem>

#include "launcher/config_loader.h"
#include "launcher/config_schema.h"
#include "core/error.h"

namespace tessera {
namespace config {
namespace {

int64_t ffn_size(const Config& c) {
  return c.model.ffn_hidden_size > 0 ? c.model.ffn_hidden_size : 4 * int64_t{c.model.hidden_size};
}

// The layer graph holds the blocks (or Linear layers) plus the embedding and the head, and
// the custom layers an embedding program places into it.
int64_t graph_layers(const Config& c, int custom_layers) { return int64_t{c.model.num_layers} + 2 + custom_layers; }

void check_model(const Config& c, const Provenance& at) {
  // With an explicit head_dim (a model whose heads were pruned) the attention width is
  // heads * head_dim and need not divide the hidden size.
  const bool attention = c.model.arch == "gpt" || c.model.arch == "llama";
  if (attention && c.model.head_dim == 0) {
    require(c.model.hidden_size % c.model.num_attention_heads == 0, c, at, "model.hidden_size",
            fmt::format("must be divisible by model.num_attention_heads = {}",
                        c.model.num_attention_heads));
  }
  if (c.model.arch == "gpt") {
    require(c.model.normalization == "layernorm", c, at, "model.normalization", "must be layernorm for model.arch: gpt");
  }
  if (c.model.arch == "llama") {
    require(c.model.normalization == "rmsnorm", c, at, "model.normalization", "must be rmsnorm for model.arch: llama");
    require(c.model.num_attention_heads % query_groups(c.model) == 0, c, at, "model.num_query_groups",
            fmt::format("must divide model.num_attention_heads = {}", c.model.num_attention_heads));
    require(attention_head_dim(c.model) % 2 == 0, c, at, "model.hidden_size",
            "must give an even head width (hidden_size / num_attention_heads) for rotary embeddings");
    // ZeRO-1's sharded gradient norm would count the last stage's copy of a tied table too.
    require(c.model.untie_embeddings_and_output_weights || c.parallel.pipeline_model_parallel_size == 1 ||
                c.parallel.zero_stage == 0,
            c, at, "parallel.zero_stage",
            "must be 0 with tied embedding and output weights across pipeline stages "
            "(model.untie_embeddings_and_output_weights: false and pipeline_model_parallel_size > 1)");
  }
}

// Tensor and pipeline layout rules; tp and pp are in the config, so they need no world.
void check_layout(const Config& c, const Provenance& at, int custom_layers) {
  const auto& p = c.parallel;
  const int64_t tp = p.tensor_model_parallel_size;
  if (p.schedule == "interleaved") {
    require(p.virtual_stages > 1, c, at, "parallel.schedule", "needs parallel.virtual_stages > 1");
    require(p.pipeline_model_parallel_size > 1, c, at, "parallel.schedule",
            "needs parallel.pipeline_model_parallel_size > 1 (use 1f1b)");
  } else {
    require(p.virtual_stages == 1, c, at, "parallel.virtual_stages",
            "must be 1 unless parallel.schedule is interleaved");
  }
  const std::string by_tp = fmt::format("must be divisible by parallel.tensor_model_parallel_size = {}", tp);
  if (c.model.arch == "llama") {
    // Key/value groups are split like the query heads, never replicated across tp ranks.
    require(query_groups(c.model) % tp == 0, c, at, "model.num_query_groups",
            by_tp + " (key/value groups are split over tensor-parallel ranks, not replicated)");
  }
  if (c.model.arch == "gpt" || c.model.arch == "llama") {
    require(c.model.num_attention_heads % tp == 0, c, at, "model.num_attention_heads", by_tp);
    require(c.model.hidden_size % tp == 0, c, at, "model.hidden_size", by_tp);
    require(ffn_size(c) % tp == 0, c, at, "model.ffn_hidden_size", by_tp);
  } else {
    require(c.model.hidden_size % tp == 0, c, at, "model.hidden_size", by_tp);
  }
  if (p.sequence_parallel) {
    require(c.model.seq_length % tp == 0, c, at, "model.seq_length",
            by_tp + " with parallel.sequence_parallel");
  }
  const int64_t stages = int64_t{p.pipeline_model_parallel_size} * p.virtual_stages;
  const std::string model_layers =
      fmt::format("the model's {} layers (model.num_layers = {} plus embedding{})", graph_layers(c, custom_layers),
                  c.model.num_layers,
                  custom_layers == 0 ? std::string(" and head")
                                     : fmt::format(", head and {} custom layer{}", custom_layers,
                                                   custom_layers == 1 ? "" : "s"));
  require(stages <= graph_layers(c, custom_layers), c, at, "parallel.pipeline_model_parallel_size",
          fmt::format("pipeline_model_parallel_size * virtual_stages = {} stages is more than {}",
                      stages, model_layers));
  if (!p.partition.empty()) {
    require(static_cast<int64_t>(p.partition.size()) == stages, c, at, "parallel.partition",
            fmt::format("must have pipeline_model_parallel_size * virtual_stages = {} entries, not {}",
                        stages, p.partition.size()));
    int64_t sum = 0;
    for (int n : p.partition) sum += n;
    require(sum == graph_layers(c, custom_layers), c, at, "parallel.partition",
            fmt::format("must sum to {}, not {}", model_layers, sum));
  }
}

void check_train(const Config& c, const Provenance& at) {
  const auto& t = c.train;
  const auto& o = t.optimizer;
  require(t.global_batch_size % t.micro_batch_size == 0, c, at, "train.global_batch_size",
          fmt::format("must be divisible by train.micro_batch_size = {}", t.micro_batch_size));
  require(o.min_lr <= o.lr, c, at, "train.optimizer.min_lr",
          fmt::format("must be <= train.optimizer.lr = {}", show(c, "train.optimizer.lr")));
  require(o.decay_steps == 0 || o.decay_steps >= o.warmup_steps, c, at, "train.optimizer.decay_steps",
          fmt::format("must be 0 (decay until train.max_steps) or >= train.optimizer.warmup_steps = {}",
                      o.warmup_steps));
  if (t.eval_interval > 0) {
    require(t.eval_iters > 0, c, at, "train.eval_iters",
            fmt::format("must be positive when train.eval_interval = {} (0 disables validation)",
                        t.eval_interval));
  }
}

void check_data(const Config& c, const Provenance& at) {
  const auto& d = c.data;
  const std::string& vocab = c.model.vocab;
  const bool tokens = d.format == "tokens";
  if (tokens) {
    const bool sized = vocab != "chars" && vocab != "bytes";
    require(sized, c, at, "model.vocab", "must be an integer vocabulary size with data.format = tokens");
    require(std::stoll(vocab) <= 65536, c, at, "model.vocab",
            "must be at most 65536 with data.format = tokens (token files hold uint16 ids)");
  } else {
    require(vocab == "chars" || vocab == "bytes", c, at, "model.vocab",
            "must be chars or bytes with data.format = text");
    require(d.val_path.empty(), c, at, "data.val_path", "must be null unless data.format = tokens");
    require(d.tokenizer.empty(), c, at, "data.tokenizer", "must be null unless data.format = tokens");
  }

  if (c.train.eval_interval > 0 && d.val_path.empty()) {
    require(d.val_fraction > 0, c, at, "data.val_fraction",
            fmt::format("must be > 0 when train.eval_interval = {}{}", c.train.eval_interval,
                        tokens ? " and data.val_path is null" : ""));
  }
}

void check_checkpoint(const Config& c, const Provenance& at) {
  if (!c.checkpoint.dir.empty()) return;
  require(c.checkpoint.interval == 0, c, at, "checkpoint.interval",
          "must be 0 when checkpoint.dir is null");
  require(c.checkpoint.resume == "none", c, at, "checkpoint.resume",
          "must be none when checkpoint.dir is null");
}

// Gradual pruning: re-prunings at start_step, start_step + interval, ..., end_step.
void check_prune(const Config& c, const Provenance& at) {
  const PruneConfig& p = c.prune;
  if (p.target_sparsity == 0) return;
  require(p.end_step > p.start_step, c, at, "prune.end_step",
          fmt::format("must be greater than prune.start_step = {}", p.start_step));
  require((p.end_step - p.start_step) % p.interval == 0, c, at, "prune.end_step",
          fmt::format("must be prune.start_step = {} plus a multiple of prune.interval = {}", p.start_step,
                      p.interval));
}

// Local SGD / DiLoCo (runtime/train/outer_sync.h): each setting needs the mode that uses it.
void check_outer_sync(const Config& c, const Provenance& at) {
  const ParallelConfig& p = c.parallel;
  const ParallelConfig defaults;
  const bool local = p.data_parallel_sync != "allreduce";
  const std::string needs_local =
      "needs parallel.data_parallel_sync = local_sgd or diloco (allreduce syncs every step)";
  require(local || p.sync_interval == 1, c, at, "parallel.sync_interval", needs_local);
  require(local || p.outer_fragments == 1, c, at, "parallel.outer_fragments", needs_local);
  require(local || p.outer_delay == 0, c, at, "parallel.outer_delay", needs_local);
  require(local || p.outer_dtype == "fp32", c, at, "parallel.outer_dtype", needs_local);
  const std::string needs_diloco = fmt::format("only applies with parallel.data_parallel_sync = diloco, not {}{}",
                                               p.data_parallel_sync,
                                               local ? " (local SGD averages: outer lr 1, no momentum)" : "");
  const bool diloco = p.data_parallel_sync == "diloco";
  require(diloco || p.outer_lr == defaults.outer_lr, c, at, "parallel.outer_lr", needs_diloco);
  require(diloco || p.outer_momentum == defaults.outer_momentum, c, at, "parallel.outer_momentum", needs_diloco);
  require(diloco || p.outer_nesterov == defaults.outer_nesterov, c, at, "parallel.outer_nesterov", needs_diloco);
  if (!local) return;
  require(c.model.num_layers % p.outer_fragments == 0, c, at, "parallel.outer_fragments",
          fmt::format("must divide model.num_layers = {} (each fragment is a run of whole blocks)",
                      c.model.num_layers));
  require(p.outer_fragments <= p.sync_interval, c, at, "parallel.outer_fragments",
          fmt::format("must be at most parallel.sync_interval = {} (one fragment's sync per step at most)",
                      p.sync_interval));
  require(p.outer_delay < p.sync_interval, c, at, "parallel.outer_delay",
          fmt::format("must be less than parallel.sync_interval = {} (a fragment's reduction must be applied "
                      "before its next one starts)", p.sync_interval));
  require(p.outer_dtype == "fp32" || p.zero_stage == 0, c, at, "parallel.outer_dtype",
          "must be fp32 with parallel.zero_stage = 1 (the sharded outer state averages the replicas' fp32 "
          "parameters, not their deltas)");
  require(p.outer_delay == 0 || p.zero_stage == 0, c, at, "parallel.outer_delay",
          "must be 0 with parallel.zero_stage = 1 (the sharded outer step is a blocking reduce-scatter and "
          "all-gather)");
  require(c.prune.target_sparsity == 0, c, at, "prune.target_sparsity",
          fmt::format("must be 0 with parallel.data_parallel_sync = {} (replicas would choose different masks)",
                      p.data_parallel_sync));
}

}  // namespace

void check_config(const Config& c, const Provenance& at, int custom_layers) {
  for (const auto& field : schema()) {
    const std::string broken = field.violation(c);
    require(broken.empty(), c, at, field.key, broken);
  }
  check_model(c, at);
  check_layout(c, at, custom_layers);
  check_train(c, at);
  check_data(c, at);
  check_checkpoint(c, at);
  check_prune(c, at);
  check_outer_sync(c, at);
}

}  // namespace config

namespace {

// The rules that need the world size.
void check_world(const Config& c, int world_size) {
  const config::Provenance at(c.source);
  const std::string& source = at.source();
  TESSERA_REQUIRE(world_size > 0, "{}: world size {} must be positive", source, world_size);
  // Refused now rather than at the first save (or the preemption signal), hours later.
  std::error_code ec;
  const std::string& dir = c.checkpoint.dir;
  config::require(dir.empty() || !std::filesystem::exists(dir, ec) || std::filesystem::is_directory(dir, ec), c, at,
                  "checkpoint.dir", "is a file, not a directory");
  const auto& p = c.parallel;
  const int64_t model_parallel = int64_t{p.tensor_model_parallel_size} * p.pipeline_model_parallel_size;
  TESSERA_REQUIRE(world_size % model_parallel == 0,
                  "{}: world size {} is not divisible by tensor_model_parallel_size * "
                  "pipeline_model_parallel_size = {}",
                  source, world_size, model_parallel);
  const int64_t dp = world_size / model_parallel;
  config::require(p.data_parallel_size == 0 || p.data_parallel_size == dp, c, at,
                  "parallel.data_parallel_size",
                  fmt::format("must be world size / (tensor_model_parallel_size * "
                              "pipeline_model_parallel_size) = {} / {} = {}, or auto",
                              world_size, model_parallel, dp));
  const int64_t micro = c.train.micro_batch_size;
  config::require(
      c.train.global_batch_size % (micro * dp) == 0, c, at, "train.global_batch_size",
      fmt::format("must be divisible by micro_batch_size * data_parallel_size = {} * {} = {}{}", micro,
                  dp, micro * dp,
                  p.data_parallel_size == 0
                      ? fmt::format(" (data_parallel_size auto = world size {} / {})", world_size, model_parallel)
                      : ""));
  const int64_t microbatches = c.train.global_batch_size / (micro * dp);
  if (p.schedule == "interleaved") {
    config::require(microbatches % p.pipeline_model_parallel_size == 0, c, at, "parallel.schedule",
                    fmt::format("needs the number of microbatches (global_batch_size / "
                                "(micro_batch_size * data_parallel_size) = {}) to be divisible by "
                                "pipeline_model_parallel_size = {}",
                                microbatches, p.pipeline_model_parallel_size));
  }
}

}  // namespace

void validate_config(const Config& c) { config::check_config(c, config::Provenance(c.source)); }

void validate_for_world(const Config& c, int world_size) {
  validate_config(c);
  check_world(c, world_size);
}

void validate_with_custom_layers(const Config& c, int world_size,
                                 const std::vector<CustomLayerPlacement>& custom_layers) {
  config::check_config(c, config::Provenance(c.source), static_cast<int>(custom_layers.size()));
  check_world(c, world_size);
}

int resolved_data_parallel_size(const Config& c, int world_size) {
  if (c.parallel.data_parallel_size > 0) return c.parallel.data_parallel_size;
  return world_size / (c.parallel.tensor_model_parallel_size * c.parallel.pipeline_model_parallel_size);
}

}  // namespace tessera
