// Progress lines, the ETA and the step-time check of `tessera train`.
#include "launcher/progress.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "partitioner/plan_report.h"
#include "core/error.h"

namespace tessera {

std::string format_duration(double seconds) {
  const int64_t s = std::isfinite(seconds) && seconds > 0 ? static_cast<int64_t>(seconds) : 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{:02}h", s / 86400, s % 86400 / 3600);
}

std::string format_progress_line(const StepMetrics& m, double eta_s) {
  std::string line = format_step_line(m);
  if (m.step < m.max_steps) line += " | ETA " + format_duration(eta_s);
  return line;
}

std::string format_live_line(int64_t step, int64_t max_steps, double loss, double step_ms, double eta_s) {
  const double percent = max_steps > 0 ? 100.0 * static_cast<double>(step) / static_cast<double>(max_steps) : 0;
  return fmt::format("step {}/{} ({:.1f}%) | loss {:.4f} | {:.0f} ms | ETA {}", step, max_steps, percent, loss,
                     step_ms, format_duration(eta_s));
}

ProgressMode parse_progress_mode(const std::string& name) {
  if (name == "auto") return ProgressMode::Auto;
  if (name == "live") return ProgressMode::Live;
  if (name == "plain") return ProgressMode::Plain;
  throw InputError(fmt::format("--progress {}: must be auto, live or plain", name));
}

bool use_live_progress(ProgressMode mode, bool stdout_is_tty, const std::string& launcher, const std::string& term) {
  if (mode != ProgressMode::Auto) return mode == ProgressMode::Live;
  return stdout_is_tty && launcher == "none" && term != "dumb";
}

void EtaClock::step_done(int64_t step, double step_ms, Clock::time_point now) {
  if (!first_) {
    first_.emplace(step, now);
    seconds_per_step_ = step_ms / 1e3;
  } else if (step > first_->first) {
    // Wall time between the first step's end and this one's: evaluation and saves included.
    seconds_per_step_ = std::chrono::duration<double>(now - first_->second).count() /
                        static_cast<double>(step - first_->first);
  }
  step_ = step;
}

double EtaClock::eta_seconds() const {
  return static_cast<double>(std::max<int64_t>(0, max_steps_ - step_)) * seconds_per_step_;
}

StepTimeCheck::StepTimeCheck(double predicted_s, std::string source, int warmup, int window, double tolerance)
    : predicted_s_(predicted_s), source_(std::move(source)), warmup_(warmup), window_(window), tolerance_(tolerance) {}

std::optional<std::string> StepTimeCheck::add(int64_t step, double step_ms) {
  if (done_ || predicted_s_ <= 0) return std::nullopt;
  if (++seen_ <= warmup_) return std::nullopt;
  if (seen_ == warmup_ + 1) first_step_ = step;
  window_ms_.push_back(step_ms);
  if (seen_ < warmup_ + window_) return std::nullopt;
  done_ = true;
  std::sort(window_ms_.begin(), window_ms_.end());
  const size_t n = window_ms_.size();
  const double measured_s = (n % 2 == 1 ? window_ms_[n / 2] : (window_ms_[n / 2 - 1] + window_ms_[n / 2]) / 2) / 1e3;
  const double ratio = measured_s / predicted_s_;
  if (std::abs(ratio - 1.0) <= tolerance_) return std::nullopt;
  // Percentages read well near the prediction; far from it, a factor does.
  const std::string off = ratio >= 0.5 && ratio <= 2 ? fmt::format("{:+.0f}%", 100.0 * (ratio - 1.0))
                                                     : fmt::format("{:.{}f}x", ratio, ratio > 2 ? 1 : 2);
  return fmt::format(
      "warning: steps {}-{} took {} per step (median) where the cost model predicted {} ({}; {}); "
      "`tessera plan --calibrate` measures this machine again and refreshes the prediction",
      first_step_, step, format_seconds(measured_s), format_seconds(predicted_s_), off, source_);
}

ProgressDisplay::ProgressDisplay(int64_t max_steps, bool live, std::FILE* out)
    : max_steps_(max_steps), live_(live), out_(out), eta_(max_steps) {}

void ProgressDisplay::step_done(int64_t step, double loss, double step_ms) {
  const auto now = EtaClock::Clock::now();
  eta_.step_done(step, step_ms, now);
  if (!live_ || now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  // \033[K clears what a longer previous line left to the right.
  std::fprintf(out_, "\r\033[K%s", format_live_line(step, max_steps_, loss, step_ms, eta_.eta_seconds()).c_str());
  std::fflush(out_);
}

std::string ProgressDisplay::log_line(const StepMetrics& m) const {
  return format_progress_line(m, eta_.eta_seconds());
}

}  // namespace tessera
