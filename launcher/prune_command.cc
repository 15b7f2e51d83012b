// `tessera prune`: reads a checkpoint's global weights, prunes them, writes a checkpoint.
#include "launcher/prune_command.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "launcher/config_loader.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/compression/magnitude_prune.h"
#include "runtime/compression/pruned_checkpoint.h"
#include "runtime/compression/structured_prune.h"
#include "runtime/data/batch_sampler.h"
#include "runtime/data/dataset.h"
#include "runtime/data/vocabulary.h"
#include "core/error.h"

namespace tessera {
namespace {

int64_t count_zeros(const Tensor& t) {
  int64_t n = 0;
  for (int64_t i = 0; i < t.numel(); ++i) n += t.f32()[i] == 0.f;
  return n;
}

int64_t count_params(const std::map<std::string, Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& [name, t] : tensors) n += t.numel();
  return n;
}

void check_options(const PruneOptions& o) {
  const bool sparsity = !std::isnan(o.sparsity);
  const bool unstructured = sparsity || !o.pattern.empty();
  TESSERA_REQUIRE(unstructured || !o.structured.empty(),
                  "prune: say what to prune: --sparsity FRACTION, --pattern N:M or --structured neurons=F,heads=F");
  TESSERA_REQUIRE(!(unstructured && !o.structured.empty()),
                  "prune: --structured cannot be combined with --sparsity or --pattern (run prune twice)");
  TESSERA_REQUIRE(!(sparsity && !o.pattern.empty()),
                  "prune: --sparsity and --pattern exclude each other (a pattern fixes the sparsity at 1 - N/M)");
  TESSERA_REQUIRE(o.scope == "global" || o.scope == "layer", "--scope {}: must be global or layer", o.scope);
  TESSERA_REQUIRE(o.importance == "weight" || o.importance == "activation",
                  "--importance {}: must be weight or activation", o.importance);
}

int run_unstructured(const PruneOptions& o, const GlobalWeights& w) {
  MagnitudePruneOptions mo;
  if (!o.pattern.empty()) {
    std::tie(mo.pattern_n, mo.pattern_m) = parse_nm_pattern(o.pattern);
  } else {
    mo.sparsity = o.sparsity;
  }
  mo.scope = o.scope == "layer" ? MagnitudePruneOptions::Scope::Layer : MagnitudePruneOptions::Scope::Global;
  std::map<std::string, Tensor> prunable;
  for (const auto& [name, t] : w.tensors) {
    if (is_prunable_weight(name, o.include_embeddings)) prunable.emplace(name, t);
  }
  TESSERA_REQUIRE(!prunable.empty(), "prune: {} has no linear-layer weights to prune", w.manifest.path);
  const std::map<std::string, Tensor> masks = magnitude_masks(prunable, mo);
  std::map<std::string, Tensor> pruned;
  int64_t zeros = 0, covered = 0;
  for (const auto& [name, t] : w.tensors) {
    Tensor v = t.clone();
    const auto m = masks.find(name);
    if (m != masks.end()) {
      for (int64_t i = 0; i < v.numel(); ++i) v.f32()[i] *= m->second.f32()[i];
      zeros += count_zeros(m->second);
      covered += v.numel();
    }
    pruned.emplace(name, std::move(v));
  }
  const SaveResult r = write_pruned_checkpoint(o.out, w.manifest, pruned, masks, w.manifest.config_yaml,
                                               w.manifest.model);
  std::cout << fmt::format("pruned {} tensors ({} weights): {} zeros, {:.2f}% of them ({:.2f}% of all {} parameters)\n",
                           masks.size(), covered, zeros, 100.0 * zeros / covered,
                           100.0 * zeros / count_params(w.tensors), count_params(w.tensors));
  std::cout << fmt::format("wrote {} ({:.1f} KiB, masks included)\n", r.step_dir, r.bytes / 1024.0);
  return 0;
}

int run_structured(const PruneOptions& o, const GlobalWeights& w) {
  const std::string source = resolve_checkpoint(o.checkpoint) + "/manifest.json config";
  const Config config = parse_config_string(w.manifest.config_yaml, source, o.overrides);
  TESSERA_REQUIRE(config.model.arch == "gpt" || config.model.arch == "llama",
                  "--structured: needs a gpt or llama model (model.arch is {})", config.model.arch);
  StructuredPruneOptions so;
  parse_structured(o.structured, so);
  so.tp = config.parallel.tensor_model_parallel_size;
  std::vector<BlockScores> scores;
  if (o.importance == "activation") {
    const Dataset data = load_dataset(config.data, config.model.vocab, config.model.seq_length);
    TESSERA_REQUIRE(w.manifest.vocabulary.is_null() || Vocabulary::from_json(w.manifest.vocabulary) == data.vocab,
                    "--importance activation: the vocabulary of {} is not the checkpoint's", config.data.path);
    // One training batch of the config's micro batch size, at step 0 of the sampler.
    const BatchSampler sampler(&data.train, config.model.seq_length, config.train.seed);
    const Batch batch = sampler.sample(0, 0, config.train.micro_batch_size);
    scores = activation_scores(w.tensors, config.model, data.vocab.size(), batch);
  } else {
    scores = weight_scores(w.tensors, config.model);
  }
  const StructuredPlan plan = plan_structured(scores, config.model, so);
  Config small = config;
  small.model = pruned_model_config(config.model, plan);
  validate_config(small);
  const std::string yaml = config_to_yaml(small);
  const std::map<std::string, Tensor> shrunk = shrink_weights(w.tensors, config.model, plan);
  const SaveResult r = write_pruned_checkpoint(o.out, w.manifest, shrunk, {}, yaml, small.model);
  const std::string config_path = (std::filesystem::path(o.out) / "config.yaml").string();
  std::ofstream(config_path) << yaml;
  std::cout << fmt::format(
      "structured ({} importance): heads {} -> {} (head_dim {}){}, ffn {} -> {} per block; parameters {} -> {}\n",
      o.importance, config.model.num_attention_heads, plan.heads, plan.head_dim,
      config.model.arch == "llama"
          ? fmt::format(", key/value groups {} -> {}", query_groups(config.model), plan.groups)
          : std::string(),
      config.model.ffn_hidden_size, plan.ffn, count_params(w.tensors), count_params(shrunk));
  std::cout << fmt::format("wrote {} ({:.1f} KiB) and its config {}\n", r.step_dir, r.bytes / 1024.0, config_path);
  return 0;
}

}  // namespace

CLI::App* add_prune_command(CLI::App& app, PruneOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "prune",
      "Prune a checkpoint: zero the smallest weights of the linear layers (masks kept for fine-tuning with "
      "--set init.from=OUT), or remove MLP neurons and attention heads for a smaller model");
  cmd->add_option("checkpoint", o.checkpoint, "Checkpoint step directory, or a checkpoint.dir for its newest")
      ->required();
  cmd->add_option("-o,--output", o.out, "Output checkpoint directory (structured: also OUT/config.yaml)")->required();
  cmd->add_option("--sparsity", o.sparsity, "Fraction in [0, 1) of the weights to zero, smallest |w| first");
  cmd->add_option("--scope", o.scope, "global: one threshold over all pruned tensors; layer: the fraction per tensor");
  cmd->add_option("--pattern", o.pattern, "N:M semi-structured sparsity, e.g. 2:4: keep the N largest |w| of every M "
                                          "consecutive weights along the input dimension");
  cmd->add_flag("--include-embeddings", o.include_embeddings, "Also prune the embedding tables (wte, wpe)");
  cmd->add_option("--structured", o.structured,
                  "Remove whole structures: neurons=FRACTION,heads=FRACTION of each block (llama: heads within each "
                  "key/value group; groups=FRACTION removes whole groups) (writes a smaller model)");
  cmd->add_option("--importance", o.importance,
                  "Structured: weight (L2 norm, default) or activation (mean |activation| on a batch of the config's "
                  "data)");
  cmd->add_option("--set", o.overrides,
                  "Structured: override the checkpoint's config (data.path, parallel.tensor_model_parallel_size, ...)")
      ->take_all();
  return cmd;
}

int run_prune(const PruneOptions& o) {
  check_options(o);
  const GlobalWeights w = read_global_weights(resolve_checkpoint(o.checkpoint));
  return o.structured.empty() ? run_unstructured(o, w) : run_structured(o, w);
}

}  // namespace tessera
