// Chrome / Perfetto trace of a run: complete events ("ph": "X", microsecond timestamps, one
// pid per rank) for forward, backward, send, receive waits and the optimizer, per microbatch,
// so a user can see the pipeline schedule and its bubble in chrome://tracing or Perfetto.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"

namespace tessera {

struct TraceEvent {
  std::string name;
  std::string category;  // compute | comm | optimizer
  int64_t start_us = 0, duration_us = 0;
  int64_t step = 0;
  int microbatch = -1, chunk = -1;
};

class TraceRecorder {
 public:
  using Clock = std::chrono::steady_clock;
  // label names this rank's row in the viewer, e.g. "rank 3 (dp 1, tp 1, pp 0)".
  TraceRecorder(int rank, std::string label);

  // Events are kept only while enabled (the trainer enables a window of steps).
  void set_step(int64_t step, bool enabled);
  bool enabled() const { return enabled_; }
  void add(const std::string& name, const std::string& category, Clock::time_point start,
           Clock::time_point end, int microbatch = -1, int chunk = -1);
  const std::vector<TraceEvent>& events() const { return events_; }

  // Collective over world: every rank writes its events next to `path`, then rank 0 merges
  // them into one JSON trace at `path` (written to a temporary name and renamed).
  void write(const std::string& path, Communicator& world) const;

 private:
  int rank_;
  std::string label_;
  int64_t step_ = 0;
  bool enabled_ = false;
  std::vector<TraceEvent> events_;
};

}  // namespace tessera
