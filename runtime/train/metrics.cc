// Step line formatting and the JSONL metrics writer.
#include "runtime/train/metrics.h"

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tessera {
namespace {

std::string human_rate(double v) {
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

}  // namespace

std::string format_step_line(const StepMetrics& m) {
  std::string line = fmt::format("step {}/{} | loss {:.4f} | lr {:.1e} | gnorm {:.2f} | {:.0f} ms | {} tok/s | {:.1f}% MFU | mem {} MiB",
                                 m.step, m.max_steps, m.loss, m.lr, m.grad_norm, m.step_ms,
                                 human_rate(m.tokens_per_s), 100.0 * m.mfu, m.mem_bytes >> 20);
  if (m.val_loss) line += fmt::format(" | val {:.4f}", *m.val_loss);
  if (m.skipped_steps > 0) line += fmt::format(" | skipped {}", m.skipped_steps);
  if (m.loss_scale) line += fmt::format(" | scale {:g}", *m.loss_scale);
  if (m.dp_bytes) line += fmt::format(" | dp {}B/step, wait {:.1f} ms", human_rate(*m.dp_bytes), m.dp_wait_ms.value_or(0));
  return line;
}

MetricsWriter::MetricsWriter(const std::string& path, bool append) : path_(path) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  out_.open(path, std::ios::out | (append ? std::ios::app : std::ios::trunc));
  TESSERA_REQUIRE(out_.good(), "{}: cannot open the metrics file for writing (log.metrics)", path);
}

void MetricsWriter::write(const StepMetrics& m) {
  nlohmann::json j = {{"step", m.step},         {"loss", m.loss},
                      {"lr", m.lr},             {"grad_norm", m.grad_norm},
                      {"step_ms", m.step_ms},   {"tokens_per_s", m.tokens_per_s},
                      {"mfu", m.mfu},           {"mem_bytes", m.mem_bytes}};
  if (m.val_loss) j["val_loss"] = *m.val_loss;
  if (m.skipped_steps > 0) j["skipped_steps"] = m.skipped_steps;
  if (m.loss_scale) j["loss_scale"] = *m.loss_scale;
  if (m.grad_comm_exposed_ms) j["grad_comm_exposed_ms"] = *m.grad_comm_exposed_ms;
  if (m.grad_comm_span_ms) j["grad_comm_span_ms"] = *m.grad_comm_span_ms;
  if (m.tp_comm_ms) j["tp_comm_ms"] = *m.tp_comm_ms;
  if (m.dp_bytes) j["dp_bytes"] = *m.dp_bytes;
  if (m.dp_wait_ms) j["dp_wait_ms"] = *m.dp_wait_ms;
  if (m.host_waits) j["host_waits"] = *m.host_waits;
  out_ << j.dump() << '\n';
  out_.flush();
  TESSERA_REQUIRE(out_.good(), "{}: write failed (disk full?)", path_);
}

}  // namespace tessera
