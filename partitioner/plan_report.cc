// Planner text output and byte-size parsing.
#include "partitioner/plan_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace tessera {

double parse_byte_size(const std::string& text, const std::string& what) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  std::string unit;
  for (size_t i = pos; i < text.size(); ++i) {
    if (!std::isspace(static_cast<unsigned char>(text[i]))) unit += static_cast<char>(std::tolower(text[i]));
  }
  double scale = -1;
  const double Ki = 1024.0;
  if (unit == "b") scale = 1;
  else if (unit == "k" || unit == "kib") scale = Ki;
  else if (unit == "m" || unit == "mib") scale = Ki * Ki;
  else if (unit == "g" || unit == "gib") scale = Ki * Ki * Ki;
  else if (unit == "t" || unit == "tib") scale = Ki * Ki * Ki * Ki;
  else if (unit == "kb") scale = 1e3;
  else if (unit == "mb") scale = 1e6;
  else if (unit == "gb") scale = 1e9;
  else if (unit == "tb") scale = 1e12;
  // A bare number is refused: "--memory-cap 24" is far more likely 24 GiB than 24 bytes.
  TESSERA_REQUIRE(pos > 0 && !unit.empty() && scale > 0 && value > 0 && std::isfinite(value),
                  "{} '{}' must be a positive size with a unit, like 24GiB, 512MiB, 80GB or 4096B", what, text);
  return value * scale;
}

std::string format_seconds(double s) {
  if (s < 1e-3) return fmt::format("{:.1f} us", s * 1e6);
  if (s < 1.0) return fmt::format("{:.1f} ms", s * 1e3);
  return fmt::format("{:.2f} s", s);
}

std::string format_rate(double r) {
  if (r >= 1e9) return fmt::format("{:.2f}G", r / 1e9);
  if (r >= 1e6) return fmt::format("{:.2f}M", r / 1e6);
  if (r >= 1e3) return fmt::format("{:.1f}k", r / 1e3);
  return fmt::format("{:.0f}", r);
}

std::string format_plan_table(const SearchResult& result, int top) {
  std::string out = fmt::format("{:>3}  {:>3} {:>3} {:>3} {:>2}  {:<11} {:>7}  {:<9} {:>4} {:>2}  {:<14} {:>10} {:>9} {:>6} {:>10} {:>7}\n",
                                "#", "dp", "tp", "pp", "v", "schedule", "mb x m", "recompute", "zero", "sp",
                                "partition", "step", "tokens/s", "MFU", "mem/rank", "bubble");
  const int n = std::min<int>(top, static_cast<int>(result.plans.size()));
  for (int i = 0; i < n; ++i) {
    const PartitionPlan& p = result.plans[i];
    std::string part = fmt::format("[{}]", fmt::join(p.partition, ","));
    if (part.size() > 14) part = part.substr(0, 12) + "..";
    out += fmt::format("{:>3}  {:>3} {:>3} {:>3} {:>2}  {:<11} {:>7}  {:<9} {:>4} {:>2}  {:<14} {:>10} {:>9} {:>5.1f}% {:>10} {:>6.1f}%\n",
                       i + 1, p.dp, p.tp, p.pp, p.virtual_stages, p.pp > 1 ? p.schedule : "-",
                       fmt::format("{} x {}", p.micro_batch_size, p.microbatches), p.recompute, p.zero_stage,
                       p.sequence_parallel ? "y" : "-", part, format_seconds(p.step_time_s),
                       format_rate(p.tokens_per_s), 100.0 * p.mfu,
                       format_bytes(static_cast<double>(p.peak_memory())), 100.0 * p.bubble);
  }
  return out;
}

std::string format_rejections(const SearchResult& result, int max_memory_lines) {
  std::vector<const Rejection*> shown, memory;
  for (const Rejection& r : result.rejected) (r.needs_bytes > 0 ? memory : shown).push_back(&r);
  std::stable_sort(memory.begin(), memory.end(),
                   [](const Rejection* a, const Rejection* b) { return a->needs_bytes < b->needs_bytes; });
  const int n = std::min<int>(max_memory_lines, static_cast<int>(memory.size()));
  shown.insert(shown.end(), memory.begin(), memory.begin() + n);
  size_t width = 0;
  for (const Rejection* r : shown) width = std::max(width, r->layout.size());
  std::string out;
  for (const Rejection* r : shown) out += fmt::format("  {:<{}}  {}\n", r->layout, width, r->reason);
  if (static_cast<int>(memory.size()) > n) {
    out += fmt::format("  ... and {} more layouts that do not fit the memory cap\n", memory.size() - n);
  }
  return out;
}

std::string format_plan_details(const PartitionPlan& p) {
  std::string out = fmt::format("{} | {} | world {} = dp {} x tp {} x pp {}{} | micro batch {} x {} microbatches\n",
                                p.model, p.cluster, p.world, p.dp, p.tp, p.pp,
                                p.virtual_stages > 1 ? fmt::format(" (v {})", p.virtual_stages) : "",
                                p.micro_batch_size, p.microbatches);
  for (size_t g = 0; g < p.partition.size(); ++g) {
    out += fmt::format("  stage {:>2}: {:>3} layer{}, {} per microbatch (fwd + bwd)\n", g, p.partition[g],
                       p.partition[g] == 1 ? " " : "s", format_seconds(p.stage_time_s[g]));
  }
  for (size_t s = 0; s < p.memory.size(); ++s) {
    const MemoryBreakdown& m = p.memory[s];
    out += fmt::format("  rank of stage {:>2}: {} = params {} + grads {} + optimizer {}{} + activations {} ({} in flight) + workspace {} + comm {}\n",
                       s, format_bytes(static_cast<double>(m.total())), format_bytes(static_cast<double>(m.params)),
                       format_bytes(static_cast<double>(m.grads)), format_bytes(static_cast<double>(m.optimizer)),
                       m.gathered > 0 ? fmt::format(" + gathered units {}", format_bytes(static_cast<double>(m.gathered))) : "",
                       format_bytes(static_cast<double>(m.activations)), m.in_flight,
                       format_bytes(static_cast<double>(m.workspace)), format_bytes(static_cast<double>(m.comm_buffers)));
  }
  const StepBreakdown& b = p.breakdown;
  out += fmt::format("  step {}: pipeline {} (busiest rank: compute {}, tp comm {}; p2p {} per message, bubble {:.1f}%)"
                     " + dp comm exposed {} of {}{} + optimizer {}{}\n",
                     format_seconds(p.step_time_s), format_seconds(b.pipeline_s), format_seconds(b.compute_s),
                     format_seconds(b.tp_comm_s), format_seconds(b.p2p_s), 100.0 * p.bubble,
                     format_seconds(b.dp_exposed_s), format_seconds(b.dp_comm_s),
                     b.dp_bytes > 0 ? fmt::format(" ({} sent per rank)", format_bytes(b.dp_bytes)) : "",
                     format_seconds(b.optimizer_s),
                     b.contention_s > 0 ? fmt::format(" + core contention {}", format_seconds(b.contention_s)) : "");
  return out;
}

}  // namespace tessera
