// Progress of `tessera train` on rank 0: the step line with the time left (ETA), a live
// progress line redrawn with '\r' when stdout is a terminal, plain lines only otherwise (batch
// logs get no '\r'), and the one-time check of the measured step time against the prediction.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "runtime/train/metrics.h"

namespace tessera {

// "45s", "6m55s", "2h05m", "3d04h": two units at most, rounded down.
std::string format_duration(double seconds);

// The step line with the time left appended: "step 120/2000 | ... | mem 412 MiB | ETA 6m55s".
// No ETA on the last step.
std::string format_progress_line(const StepMetrics& metrics, double eta_s);

// The live line: "step 37/2000 (1.9%) | loss 2.4312 | 212 ms | ETA 6m55s".
std::string format_live_line(int64_t step, int64_t max_steps, double loss, double step_ms, double eta_s);

// --progress: live (redraw one line), plain (a line per logged step), auto (live when stdout is
// a terminal of its own: not TERM=dumb, and not under an MPI launcher, whose ranks always see
// a pseudo-terminal even when mpirun writes to a file).
enum class ProgressMode { Auto, Live, Plain };
ProgressMode parse_progress_mode(const std::string& name);  // InputError for other names
bool use_live_progress(ProgressMode mode, bool stdout_is_tty, const std::string& launcher,
                       const std::string& term);

// Time left: steps left times the wall time per step of this run so far (evaluation and
// checkpoints included), or the last step time until two steps are done.
class EtaClock {
 public:
  using Clock = std::chrono::steady_clock;
  explicit EtaClock(int64_t max_steps) : max_steps_(max_steps) {}
  // After each step, with that step's compute time.
  void step_done(int64_t step, double step_ms, Clock::time_point now);
  double eta_seconds() const;

 private:
  int64_t max_steps_;
  std::optional<std::pair<int64_t, Clock::time_point>> first_;
  int64_t step_ = 0;
  double seconds_per_step_ = 0;
};

// Compares the measured step time with the planner's prediction once, after `warmup` steps
// of this run (allocation, first touch): the median of the `window` steps after them, so one
// step slowed by another process does not decide it.
class StepTimeCheck {
 public:
  // predicted_s: the cost model's step time; source: the machine model it came from.
  StepTimeCheck(double predicted_s, std::string source, int warmup = 3, int window = 5, double tolerance = 0.25);
  // One step of this run (steps counted from 1 in this run); returns the warning, once, when
  // the window's median departs from the prediction by more than the tolerance.
  std::optional<std::string> add(int64_t step, double step_ms);

 private:
  double predicted_s_;
  std::string source_;
  int warmup_, window_;
  double tolerance_;
  int seen_ = 0;
  std::vector<double> window_ms_;
  int64_t first_step_ = 0;
  bool done_ = false;
};

// Prints the progress of rank 0: the live line after each step (live mode, at most 10 times a
// second), the step line with ETA on the steps that log.
class ProgressDisplay {
 public:
  ProgressDisplay(int64_t max_steps, bool live, std::FILE* out);
  void step_done(int64_t step, double loss, double step_ms);
  // The line of a logging step (printed through spdlog, which clears a live line first).
  std::string log_line(const StepMetrics& metrics) const;
  bool live() const { return live_; }

 private:
  int64_t max_steps_;
  bool live_;
  std::FILE* out_;
  EtaClock eta_;
  EtaClock::Clock::time_point last_draw_{};
};

}  // namespace tessera
