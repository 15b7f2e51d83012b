// The rules between config fields, and those that need the world size. Each names the key
// it blames, its value, and the other values involved.
#include <fmt/format.h>

#include <cstdint>
#include <filesystem>

#include "launcher/config_loader.h"
#include "launcher/config_schema.h"
#include "core/error.h"
#include "partitioner/layout_rules.h"

namespace tessera {
namespace config {
namespace {

// A layout rule broken by the config: its line, with the file and --set provenance of the key.
void require_layout_rule(const std::optional<LayoutViolation>& v, const Config& c, const Provenance& at) {
  if (v) require(false, c, at, v->key, v->rule_text);
}

void check_model(const Config& c, const Provenance& at) { require_layout_rule(model_shape_violation(c.model), c, at); }

// The tensor and pipeline layout rules (partitioner/layout_rules.h) that need no world size.
void check_layout(const Config& c, const Provenance& at, int custom_layers) {
  require_layout_rule(first_layout_violation(c.model, layout_facts(c, 0, custom_layers)), c, at);
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
  // The batch rules, now that dp is known (the others were checked without the world).
  for (const LayoutViolation& v : layout_violations(c.model, layout_facts(c, world_size))) {
    if (v.rule == LayoutRule::BatchDivisibleByMicroBatchTimesDp || v.rule == LayoutRule::InterleavedMicrobatches) {
      config::require(false, c, at, v.key, v.rule_text);
    }
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
  return resolve_data_parallel_size(c.parallel.data_parallel_size, world_size, c.parallel.tensor_model_parallel_size,
                                    c.parallel.pipeline_model_parallel_size);
}

}  // namespace tessera
