// Trainer::fit, the training loop: resume or init, steps, validations, checkpoints, the
// averaged step-line metrics of each log window, a requested stop, and the end-of-run report.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "runtime/train/trainer.h"

#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

// Step times and communication times summed since the last logged step: the step line shows
// their mean over the window, not the last step's (which may be a checkpoint step).
struct LogWindow {
  double step_ms = 0, exposed_ms = 0, span_ms = 0, tp_ms = 0;
  double dp_bytes = 0, dp_wait_ms = 0;
  int64_t host_waits = 0;  // the most of any step
  int steps = 0;

  void add(const StepResult& r, const GradSyncStats& sync) {
    step_ms += r.step_ms;
    host_waits = std::max(host_waits, r.host_waits);
    tp_ms += r.tp_comm_ms;
    dp_bytes += r.dp_bytes;
    dp_wait_ms += r.dp_wait_ms;
    exposed_ms += sync.exposed_ms;
    span_ms += sync.comm_span_ms;
    ++steps;
  }
};

}  // namespace

void log_with_spdlog(TrainerCallbacks& callbacks, bool logging_rank) {
  if (!logging_rank) return;
  if (!callbacks.on_log) callbacks.on_log = [](const StepMetrics& m) { spdlog::info("{}", format_step_line(m)); };
  if (!callbacks.on_message) {
    callbacks.on_message = [](LogLevel level, const std::string& line) {
      if (level == LogLevel::Warning) {
        spdlog::warn("{}", line);
      } else {
        spdlog::info("{}", line);
      }
    };
  }
}

bool Trainer::stop_requested_everywhere() {
  if (options_.stop_requested == nullptr) return false;
  // A signal may reach only some ranks (or reach them at different steps): agree on it.
  const double mine = options_.stop_requested->load() ? 1.0 : 0.0;
  return all_reduce_scalar(mine, groups_.world, ReduceOp::Max) > 0;
}

void Trainer::log_run_start() const {
  // Only what the trainer measures or allocates: the layout, the stages and the parameter
  // count are the config's, and `tessera train`'s banner prints them (launcher/banner.cc).
  message(LogLevel::Info, fmt::format("model: {:.1f} MFLOP per token; peak {:.1f} GFLOP/s per rank ({}), MFU's reference",
                                      graph_.flops_per_token() / 1e6, peak_flops_ / 1e9,
                                      config_.train.peak_tflops > 0 ? "train.peak_tflops" : "measured"));
  message(LogLevel::Info, fmt::format("optimizer state: {:.2f} MiB per rank{}", optimizer_state_bytes() / 1048576.0,
                                      optimizer_->zero_stage() >= 1
                                          ? fmt::format(" (ZeRO-{} sharded over dp {})", optimizer_->zero_stage(),
                                                        groups_.dp_size)
                                          : ""));
}

void Trainer::fit() {
  const TrainConfig& t = config_.train;
  const CheckpointConfig& ckpt = config_.checkpoint;
  const bool resumed = ckpt.resume == "auto" && resume();
  if (!resumed && !config_.init.from.empty()) init_from(config_.init.from);
  first_step_ = step_;
  std::unique_ptr<MetricsWriter> metrics;
  // A resumed run continues the metrics of the run it resumes.
  if (groups_.is_logging_rank() && !config_.log.metrics.empty()) {
    metrics = std::make_unique<MetricsWriter>(config_.log.metrics, step_ > 0);
  }
  const double tokens_per_step = static_cast<double>(t.global_batch_size) * config_.model.seq_length;
  const double flops_per_step = graph_.flops_per_token() * tokens_per_step;
  const int world = groups_.world ? groups_.world->size() : 1;
  log_run_start();
  LogWindow window;
  bool stopped = false;
  while (step_ < t.max_steps && !stopped) {
    const StepResult r = train_step();
    window.add(r, grad_sync_stats());
    const bool eval_now = t.eval_interval > 0 && (step_ % t.eval_interval == 0 || step_ == t.max_steps);
    const bool log_now = step_ % config_.log.interval == 0 || step_ == t.max_steps || step_ == 1;
    std::optional<double> val;
    if (eval_now && data_->has_validation()) val = evaluate();
    // [outer sync hook] Between syncs the replicas share no per-step collective: agree on a
    // stop request only on logging steps, so the slow dp link is not crossed every step.
    stopped = (!outer_sync_ || log_now) && stop_requested_everywhere();
    const bool interval_due = ckpt.interval > 0 && step_ % ckpt.interval == 0;
    if (!ckpt.dir.empty() && (interval_due || stopped || (ckpt.interval > 0 && step_ == t.max_steps))) save();
    if (stopped) {
      message(LogLevel::Info, fmt::format("stop requested: {} at step {}, exiting",
                                          ckpt.dir.empty() ? "no checkpoint.dir, nothing saved" : "checkpoint saved",
                                          step_));
    }
    if (!(log_now || val)) continue;
    StepMetrics m;
    m.step = step_;
    m.max_steps = t.max_steps;
    // [outer sync hook] The replicas' mean loss, reduced only for the steps that are logged.
    m.loss = outer_sync_ ? all_reduce_scalar(r.loss, groups_.dp, ReduceOp::Avg) : r.loss;
    m.lr = r.lr;
    m.grad_norm = r.grad_norm;
    m.step_ms = window.step_ms / window.steps;
    m.tokens_per_s = tokens_per_step / (m.step_ms / 1e3);
    const double achieved = flops_per_step / (m.step_ms / 1e3) / world;
    if (t.peak_tflops <= 0 && achieved > peak_flops_) raise_mfu_roof(achieved);
    m.mfu = achieved / peak_flops_;
    m.mem_bytes = peak_tensor_bytes();
    m.val_loss = val;
    m.skipped_steps = skipped_steps_;
    if (loss_scaler_) m.loss_scale = loss_scaler_->scale();
    if (grad_sync_ || zero_units_) {
      m.grad_comm_exposed_ms = window.exposed_ms / window.steps;
      m.grad_comm_span_ms = window.span_ms / window.steps;
    }
    if (groups_.tp.size > 1) m.tp_comm_ms = window.tp_ms / window.steps;
    if (!compute_->device().is_cpu()) m.host_waits = window.host_waits;
    if (data_parallel()) {
      m.dp_bytes = window.dp_bytes / window.steps;
      m.dp_wait_ms = window.dp_wait_ms / window.steps;
    }
    window = LogWindow{};
    if (options_.callbacks.on_log) options_.callbacks.on_log(m);
    if (metrics) metrics->write(m);
  }
  if (!stopped) log_run_end();
}

int64_t Trainer::peak_tensor_bytes() const {
  const Device device = compute_->device();
  return device.is_cpu() ? host_memory_stats().peak_bytes : device_memory(device)->stats().peak_bytes;
}

void Trainer::log_run_end() {
  if (groups_.world && groups_.world->size() > 1) {
    // Peak tensor memory of the steps and of the set-up, and pipeline depth, of every rank, for
    // memory tables per stage.
    Tensor mine = Tensor::full({3}, 0.f);
    mine.f32()[0] = static_cast<float>(peak_tensor_bytes() / 1048576.0);
    mine.f32()[1] = static_cast<float>(peak_in_flight());
    mine.f32()[2] = static_cast<float>(setup_peak_bytes_ / 1048576.0);
    Tensor all = Tensor::empty({3 * groups_.world->size()});
    groups_.world->all_gather(mine, all);
    std::vector<std::string> parts, setup;
    for (int r = 0; r < groups_.world->size(); ++r) {
      parts.push_back(fmt::format("{:.1f} MiB/{:.0f}", all.f32()[3 * r], all.f32()[3 * r + 1]));
      setup.push_back(fmt::format("{:.1f} MiB", all.f32()[3 * r + 2]));
    }
    const bool device = !compute_->device().is_cpu();
    message(LogLevel::Info, fmt::format("peak {}tensor memory / microbatches in flight per rank: {}",
                                        device ? "device " : "", fmt::join(parts, ", ")));
    message(LogLevel::Info, fmt::format("set-up peak {}tensor memory per rank: {}", device ? "host " : "",
                                        fmt::join(setup, ", ")));
  }
  if (dp_traffic_steps_ > 0) {
    // Measured payloads per step, and what a ring sends for them (partitioner/zero_model.h).
    const double steps = static_cast<double>(dp_traffic_steps_), mib = 1048576.0;
    message(LogLevel::Info,
            fmt::format("dp traffic per step (this rank): all-reduce {:.3f} MiB, all-gather {:.3f} MiB, "
                        "reduce-scatter {:.3f} MiB; a ring sends {:.3f} MiB of it",
                        dp_traffic_.all_reduce / steps / mib, dp_traffic_.all_gather / steps / mib,
                        dp_traffic_.reduce_scatter / steps / mib,
                        dp_traffic_.ring_sent_bytes(groups_.dp_size) / steps / mib));
  }
  if (trace_ && groups_.world) {
    trace_->write(config_.log.trace, *groups_.world);
    message(LogLevel::Info, fmt::format("trace of steps {}-{} written to {}", first_step_ + kTraceFirstStep + 1,
                                        std::min<int64_t>(config_.train.max_steps,
                                                          first_step_ + kTraceFirstStep + kTraceSteps),
                                        config_.log.trace));
  }
}

}  // namespace tessera
