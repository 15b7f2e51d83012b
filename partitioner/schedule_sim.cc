// Discrete-event simulation of pipeline schedules: every rank runs its action list in order,
// receives wait for the matching send, and the result is the makespan and bubble per rank.
#include "partitioner/schedule_sim.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "core/error.h"

namespace tessera {
namespace {

bool is_compute(ActionKind k) { return k == ActionKind::Forward || k == ActionKind::Backward; }
bool is_send(ActionKind k) { return k == ActionKind::SendAct || k == ActionKind::SendGrad; }
bool is_act(ActionKind k) { return k == ActionKind::RecvAct || k == ActionKind::SendAct; }

// A message in flight: direction (activation or gradient), sending global stage, microbatch.
using MessageKey = std::tuple<bool, int, int>;
using InFlight = std::map<MessageKey, std::pair<double, int>>;  // -> (arrival time, sending rank)

struct Rank {
  size_t pc = 0;
  double clock = 0;
  double busy = 0;
};

// The sending global stage of the message a transfer action sends or receives.
int sender_stage(const Action& a, int g) {
  switch (a.kind) {
    case ActionKind::RecvAct: return g - 1;
    case ActionKind::RecvGrad: return g + 1;
    default: return g;
  }
}

char glyph(const Action& a) {
  const int mb = a.microbatch;
  if (a.kind == ActionKind::Forward) {
    if (mb < 10) return static_cast<char>('0' + mb);
    return mb < 36 ? static_cast<char>('A' + mb - 10) : '#';
  }
  return mb < 26 ? static_cast<char>('a' + mb) : '#';
}

// Busy time, makespan, bubbles and the in-flight peak per rank, and the error when a rank stopped
// short (a deadlock) or a message was never received.
void summarize(const std::vector<std::vector<Action>>& ranks, const std::vector<Rank>& state,
               const InFlight& in_flight, SimulationResult& r) {
  const int p = static_cast<int>(ranks.size());
  r.busy_ms.resize(static_cast<size_t>(p));
  r.peak_in_flight.resize(static_cast<size_t>(p));
  std::string blocked;
  for (int s = 0; s < p; ++s) {
    const Rank& rank = state[static_cast<size_t>(s)];
    const auto& list = ranks[static_cast<size_t>(s)];
    r.busy_ms[static_cast<size_t>(s)] = rank.busy;
    r.makespan_ms = std::max(r.makespan_ms, rank.clock);
    r.peak_in_flight[static_cast<size_t>(s)] = peak_in_flight(list);
    if (rank.pc < list.size()) {
      blocked += fmt::format("{}rank {} waits at action {} {}", blocked.empty() ? "" : "; ", s,
                             rank.pc, to_string(list[rank.pc]));
    }
  }
  if (r.error.empty() && !blocked.empty()) {
    r.deadlocked = true;
    r.error = "deadlock: " + blocked;
  }
  if (r.error.empty() && !in_flight.empty()) {
    const auto& [key, value] = *in_flight.begin();
    r.error = fmt::format("{} message(s) never received, e.g. the {} of microbatch {} sent by "
                          "rank {} (global stage {})",
                          in_flight.size(), std::get<0>(key) ? "activation" : "gradient",
                          std::get<2>(key), value.second, std::get<1>(key));
  }
  for (int s = 0; s < p; ++s) {
    const double busy = r.busy_ms[static_cast<size_t>(s)];
    r.bubble.push_back(r.makespan_ms > 0 ? (r.makespan_ms - busy) / r.makespan_ms : 0.0);
  }
}

}  // namespace

StageCosts StageCosts::uniform(int global_stages, double forward_ms, double backward_ms,
                               double p2p_ms) {
  TESSERA_CHECK(global_stages >= 1, "StageCosts::uniform needs at least one stage, not {}",
                global_stages);
  StageCosts c;
  c.forward_ms.assign(static_cast<size_t>(global_stages), forward_ms);
  c.backward_ms.assign(static_cast<size_t>(global_stages), backward_ms);
  c.p2p_ms = p2p_ms;
  return c;
}

SimulationResult simulate_actions(const std::vector<std::vector<Action>>& ranks,
                                  int virtual_stages, const StageCosts& costs) {
  const int p = static_cast<int>(ranks.size());
  const int stages_total = p * virtual_stages;
  TESSERA_CHECK(p >= 1 && virtual_stages >= 1, "simulate: {} ranks x {} chunks", p,
                virtual_stages);
  TESSERA_CHECK(static_cast<int>(costs.forward_ms.size()) == stages_total &&
                    static_cast<int>(costs.backward_ms.size()) == stages_total,
                "simulate: costs for {} forward / {} backward stages, the pipeline has {}",
                costs.forward_ms.size(), costs.backward_ms.size(), stages_total);

  SimulationResult r;
  r.timeline.resize(static_cast<size_t>(p));
  std::vector<Rank> state(static_cast<size_t>(p));
  InFlight in_flight;

  // Checks one action of rank s before it runs; returns an error message or "".
  auto invalid = [&](const Action& a, int s) -> std::string {
    if (a.chunk < 0 || a.chunk >= virtual_stages || a.microbatch < 0) {
      return fmt::format("rank {} has {} outside the {} chunks", s, to_string(a), virtual_stages);
    }
    if (is_compute(a.kind)) return "";
    const int from = sender_stage(a, global_stage(s, p, a.chunk));
    const int to = is_send(a.kind) ? (is_act(a.kind) ? from + 1 : from - 1) : 0;
    if (from < 0 || from >= stages_total || to < 0 || to >= stages_total) {
      return fmt::format("rank {} has {}, which has no peer stage", s, to_string(a));
    }
    return "";
  };

  bool progress = true;
  while (progress && r.error.empty()) {
    progress = false;
    for (int s = 0; s < p && r.error.empty(); ++s) {
      Rank& rank = state[static_cast<size_t>(s)];
      const auto& list = ranks[static_cast<size_t>(s)];
      while (rank.pc < list.size()) {
        const Action& a = list[rank.pc];
        r.error = invalid(a, s);
        if (!r.error.empty()) break;
        const int g = global_stage(s, p, a.chunk);
        const double start = rank.clock;
        if (is_compute(a.kind)) {
          const auto& cost = a.kind == ActionKind::Forward ? costs.forward_ms : costs.backward_ms;
          rank.clock += cost[static_cast<size_t>(g)];
          rank.busy += cost[static_cast<size_t>(g)];
        } else if (is_send(a.kind)) {
          const MessageKey key{is_act(a.kind), g, a.microbatch};
          if (in_flight.count(key) != 0) {
            r.error = fmt::format("rank {} sends {} twice", s, to_string(a));
            break;
          }
          in_flight[key] = {rank.clock + costs.p2p_ms, s};
        } else {
          const auto it = in_flight.find({is_act(a.kind), sender_stage(a, g), a.microbatch});
          if (it == in_flight.end()) break;  // blocked until the sender gets there
          rank.clock = std::max(rank.clock, it->second.first);
          in_flight.erase(it);
        }
        r.timeline[static_cast<size_t>(s)].push_back({a, start, rank.clock});
        ++rank.pc;
        progress = true;
      }
    }
  }

  summarize(ranks, state, in_flight, r);
  return r;
}

SimulationResult simulate(ScheduleKind kind, int stages, int microbatches, int virtual_stages,
                          const StageCosts& costs) {
  SimulationResult r =
      simulate_actions(make_all_schedules(kind, stages, microbatches, virtual_stages),
                       virtual_stages, costs);
  TESSERA_CHECK(r.ok(), "{} schedule, {} stages, {} microbatches, {} chunks: {}",
                schedule_name(kind), stages, microbatches, virtual_stages, r.error);
  return r;
}

std::string render_timeline(const SimulationResult& result, int virtual_stages,
                            double ms_per_column) {
  TESSERA_CHECK(ms_per_column > 0, "render_timeline: {} ms per column", ms_per_column);
  const auto columns = static_cast<size_t>(std::ceil(result.makespan_ms / ms_per_column - 1e-9));
  auto column = [&](double ms) {
    return std::min(columns, static_cast<size_t>(std::llround(ms / ms_per_column)));
  };
  std::string out;
  for (size_t s = 0; s < result.timeline.size(); ++s) {
    std::string row(columns, '.');
    std::string chunks(columns, ' ');
    for (const TimedAction& t : result.timeline[s]) {
      if (!is_compute(t.action.kind)) continue;
      for (size_t c = column(t.start_ms); c < column(t.end_ms); ++c) {
        row[c] = glyph(t.action);
        chunks[c] = t.action.chunk < 10 ? static_cast<char>('0' + t.action.chunk) : '#';
      }
    }
    out += fmt::format("rank {}  {}\n", s, row);
    if (virtual_stages > 1) {
      while (!chunks.empty() && chunks.back() == ' ') chunks.pop_back();
      out += fmt::format("chunk   {}\n", chunks);
    }
  }
  return out;
}

}  // namespace tessera
