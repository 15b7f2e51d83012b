// The start-up banner of `tessera train`: it formats what the bring-up decided.
#include "launcher/banner.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "partitioner/plan_report.h"

namespace tessera {
namespace {

std::string tokens(int64_t n) { return format_rate(static_cast<double>(n)); }

// "pp0 embedding..h.1 | pp1 h.2..head": the layers of each global stage, by pipeline rank.
std::string stage_layers(const LayerGraph& graph, const std::vector<int>& partition, int pp) {
  std::vector<std::string> stages;
  size_t first = 0;
  for (size_t g = 0; g < partition.size(); ++g) {
    const size_t last = first + static_cast<size_t>(partition[g]);
    if (last > graph.layers.size() || last == first) return fmt::format("{}", fmt::join(partition, ", "));
    const std::string& a = graph.layers[first].name;
    const std::string& b = graph.layers[last - 1].name;
    stages.push_back(fmt::format("pp{} {}", g % pp, last - first == 1 ? a : a + ".." + b));
    first = last;
  }
  return fmt::format("{}", fmt::join(stages, " | "));
}

std::string model_line(const ModelConfig& m, const LayerGraph& graph, int64_t vocab) {
  const std::string shape =
      m.arch == "gpt" ? fmt::format("gpt, {} layers x {} hidden, {} heads, ffn {}, seq {}", m.num_layers,
                                    m.hidden_size, m.num_attention_heads,
                                    m.ffn_hidden_size > 0 ? m.ffn_hidden_size : 4 * m.hidden_size, m.seq_length)
      : m.arch == "llama"
          ? fmt::format("llama, {} layers x {} hidden, {} heads / {} kv groups, ffn {}, seq {}, {} embeddings",
                        m.num_layers, m.hidden_size, m.num_attention_heads, query_groups(m), ffn_size(m),
                        m.seq_length, m.untie_embeddings_and_output_weights ? "untied" : "tied")
          : fmt::format("mlp, {} layers x {} hidden, seq {}", m.num_layers, m.hidden_size, m.seq_length);
  return fmt::format("{}, vocab {}: {:.2f}M parameters", shape, vocab, static_cast<double>(graph.total_params()) / 1e6);
}

std::string checkpoint_line(const CheckpointConfig& c, const std::string& resume) {
  if (c.dir.empty()) return "none (checkpoint.dir is null)";
  const std::string every = c.interval > 0 ? fmt::format("every {} steps and at the end", c.interval)
                                           : std::string("on SIGUSR1/SIGTERM only");
  return fmt::format("{}, {}, keep {}; resume {}", c.dir, every, c.keep, resume);
}

std::string prediction_line(const RunFacts& f) {
  if (!f.predicted) return fmt::format("none: {}", f.prediction_source);
  const PartitionPlan& p = *f.predicted;
  std::vector<std::string> memory;
  for (size_t s = 0; s < p.memory.size(); ++s) {
    memory.push_back(fmt::format("{}{}", format_bytes(static_cast<double>(p.memory[s].total())),
                                 p.memory.size() > 1 ? fmt::format(" (pp{})", s) : ""));
  }
  return fmt::format("{} per step, {} tokens/s, {:.1f}% MFU, bubble {:.0f}%; memory per rank {} [{}]",
                     format_seconds(p.step_time_s), format_rate(p.tokens_per_s), 100.0 * p.mfu, 100.0 * p.bubble,
                     fmt::join(memory, ", "), f.prediction_source);
}

// ", dp sync diloco H=20 (4 fragments, delay 2, bf16)" for local SGD / DiLoCo, else nothing.
std::string outer_sync_text(const ParallelConfig& p) {
  if (p.data_parallel_sync == "allreduce") return "";
  std::string s = fmt::format(", dp sync {} H={}", p.data_parallel_sync, p.sync_interval);
  if (p.data_parallel_sync == "diloco") s += fmt::format(" (outer lr {:g}, momentum {:g})", p.outer_lr, p.outer_momentum);
  if (p.outer_fragments > 1 || p.outer_delay > 0) {
    s += fmt::format(", streaming: {} fragments, delay {}", p.outer_fragments, p.outer_delay);
  }
  if (p.outer_dtype != "fp32") s += ", " + p.outer_dtype + " deltas";
  return s;
}

}  // namespace

std::string format_banner(const Config& c, const LayerGraph& graph, const RunFacts& f) {
  const ParallelConfig& par = c.parallel;
  const int tp = par.tensor_model_parallel_size, pp = par.pipeline_model_parallel_size;
  const int microbatches = c.train.global_batch_size / (c.train.micro_batch_size * f.dp);
  std::string out = fmt::format("tessera {} | world {} = dp {} x tp {} x pp {} | {} thread{} per rank\n",
                                TESSERA_VERSION, f.world, f.dp, tp, pp, f.threads, f.threads == 1 ? "" : "s");
  out += fmt::format("  layout      schedule {}, v {}, {} microbatch{} of {} per rank, sp {}, zero {}, recompute {}{}\n",
                     pp > 1 ? par.schedule : "none (pp 1)", par.virtual_stages, microbatches,
                     microbatches == 1 ? "" : "es", c.train.micro_batch_size, par.sequence_parallel ? "on" : "off",
                     par.zero_stage, par.recompute, outer_sync_text(par));
  std::string how;
  if (par.partition.empty()) {
    how = f.partition_source.empty() ? " (auto)" : fmt::format(" (auto, balanced by {})", f.partition_source);
  }
  out += fmt::format("  stages      [{}]{}: {}\n", fmt::join(f.partition, ", "), how,
                     stage_layers(graph, f.partition, pp));
  out += fmt::format("  model       {}\n", model_line(c.model, graph, f.vocab));
  out += fmt::format("  data        {}{} ({}): {} train / {} val tokens, global batch {} x {} tokens\n", c.data.path,
                     c.data.val_path.empty() ? "" : " + " + c.data.val_path,
                     c.data.format == "text" ? fmt::format("text, vocab {}", c.model.vocab) : std::string("tokens"),
                     tokens(f.train_tokens), tokens(f.val_tokens), c.train.global_batch_size, c.model.seq_length);
  out += fmt::format("  checkpoint  {}\n", checkpoint_line(c.checkpoint, f.resume));
  out += fmt::format("  predicted   {}\n", prediction_line(f));
  return out;
}

void take_partition(RunFacts& f, const PartitionChoice& choice) {
  f.partition = choice.partition;
  f.partition_source = choice.source;
  f.predicted = choice.predicted;
  f.prediction_source = choice.prediction_source;
}

}  // namespace tessera
