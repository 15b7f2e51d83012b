// Per-step metrics: the rank-0 log line and the JSONL metrics file (field names from the
// design brief; scripts and tests read them).
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

namespace tessera {

struct StepMetrics {
  int64_t step = 0;  // 1-based count of optimizer steps done
  int64_t max_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0, step_ms = 0, tokens_per_s = 0, mfu = 0;
  int64_t mem_bytes = 0;
  int64_t skipped_steps = 0;  // so far in this run (train.on_nan: skip)
  std::optional<double> val_loss;
  // Data-parallel gradient communication per step (mean over the window): time waited after
  // backward, and the span from the first bucket's launch to the last one's completion.
  std::optional<double> grad_comm_exposed_ms, grad_comm_span_ms;
  std::optional<double> tp_comm_ms;  // tensor-parallel communication per step (tp > 1)
  std::optional<double> loss_scale;  // fp16 dynamic loss scale after this step
  // Data-parallel traffic per step (dp > 1, mean over the window): bytes this rank sent (ring
  // estimate) and time waited on the dp link; with local_sgd / diloco only sync steps send.
  std::optional<double> dp_bytes, dp_wait_ms;
  // GPU runs: the most times the host waited on the device in one step of the window.
  std::optional<int64_t> host_waits;
};

// "step 120/2000 | loss 2.1432 | lr 9.6e-04 | gnorm 0.84 | 212 ms | 14.5k tok/s | 38.1% MFU | mem 412 MiB"
std::string format_step_line(const StepMetrics& m);

// Appends one JSON object per line, flushed per line so a killed job keeps its history.
class MetricsWriter {
 public:
  // append: keep the lines already there (a resumed run), else start the file afresh.
  MetricsWriter(const std::string& path, bool append);
  void write(const StepMetrics& m);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace tessera
