// A discrete-event simulation of all pipeline ranks running their schedule together: checks
// that the lists fit (no deadlock, every message received) and predicts step time and bubble.
#pragma once

#include <string>
#include <vector>

#include "partitioner/schedule.h"

namespace tessera {

// Compute time of each global stage (stages * virtual_stages entries, indexed by
// global_stage()) and the time from a send to its arrival at the receiver.
struct StageCosts {
  std::vector<double> forward_ms;
  std::vector<double> backward_ms;
  double p2p_ms = 0;
  static StageCosts uniform(int global_stages, double forward_ms, double backward_ms,
                            double p2p_ms = 0);
};

struct TimedAction {
  Action action;
  double start_ms;  // when the rank reached the action
  double end_ms;    // compute: start + cost; receive: when the message arrived (or start, if
                    // it was already there); send: start (sends are buffered)
};

struct SimulationResult {
  double makespan_ms = 0;                         // last action of any rank; all start at 0
  std::vector<double> busy_ms;                    // per rank: sum of forward/backward times
  std::vector<double> bubble;                     // per rank: (makespan - busy) / makespan
  std::vector<int> peak_in_flight;                // per rank
  std::vector<std::vector<TimedAction>> timeline;  // per rank, the actions that ran, in order
  bool deadlocked = false;  // actions remained but every rank waited on a receive
  std::string error;        // empty when every action ran and every message was received
  bool ok() const { return error.empty(); }
};

// Runs the lists (one per pipeline rank) as a discrete-event simulation. Each rank runs its
// actions in order: Forward/Backward take the stage's cost; a send is buffered (takes no time,
// the message arrives p2p_ms later); a receive waits for its message, matched by the sending
// global stage, direction and microbatch. Links have no bandwidth limit (messages do not queue
// behind each other). A deadlock or an unmatched message is reported in the result, not thrown.
SimulationResult simulate_actions(const std::vector<std::vector<Action>>& ranks,
                                  int virtual_stages, const StageCosts& costs);

// simulate_actions(make_all_schedules(...)). A built-in schedule that deadlocks is a bug: that
// throws tessera::Error. Invalid parameters throw InputError.
SimulationResult simulate(ScheduleKind kind, int stages, int microbatches, int virtual_stages,
                          const StageCosts& costs);

// The timeline as text, one row per rank (per rank and chunk when virtual_stages > 1), one
// column per `ms_per_column`: forward = microbatch digit (0-9, then A-Z), backward = letter
// (a = microbatch 0), '.' = idle. For docs and debugging; microbatches past 35 print as '#'.
std::string render_timeline(const SimulationResult& result, int virtual_stages,
                            double ms_per_column = 1.0);

}  // namespace tessera
