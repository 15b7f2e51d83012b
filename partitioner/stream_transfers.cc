// The stream plan of a pipeline rank's transfers and the check that all ranks' plans run (see the header).
#include "partitioner/stream_transfers.h"

#include <fmt/format.h>

#include <map>
#include <optional>
#include <tuple>

#include "core/error.h"

namespace tessera {
namespace {

bool is_transfer(ActionKind k) { return k != ActionKind::Forward && k != ActionKind::Backward; }
bool is_send(ActionKind k) { return k == ActionKind::SendAct || k == ActionKind::SendGrad; }

// A message: (activation or gradient, sending global stage, microbatch).
using MessageKey = std::tuple<bool, int, int>;

MessageKey message_of(const Action& a, int stage, int stages, int v) {
  const bool activation = a.kind == ActionKind::SendAct || a.kind == ActionKind::RecvAct;
  if (is_send(a.kind)) return {activation, global_stage(stage, stages, a.chunk), a.microbatch};
  const StageRef from = transfer_peer(a, stage, stages, v);
  return {activation, global_stage(from.stage, stages, from.chunk), a.microbatch};
}

struct RankRun {
  const std::vector<Action>* actions = nullptr;
  std::vector<StreamStep> plan;
  std::vector<size_t> group_steps;    // the plan's group steps, in order
  std::vector<int> group_of;          // per action: the index of its group, -1 for compute
  std::vector<int> receive_group;     // per plan step: for compute, the group of its receive (-1: none)
  std::vector<std::pair<int, int>> peer_group;  // per transfer action: (peer rank, peer's group)
  size_t compute_pos = 0;             // the first plan step the compute stream has not passed
  size_t started = 0;                 // groups started
  std::vector<bool> finished;

  bool done() const { return compute_pos == plan.size() && (finished.empty() || finished.back()); }
};

// Matches every transfer with its peer's; throws when a message has no other end.
void link_peers(std::vector<RankRun>& runs, int v) {
  const int stages = static_cast<int>(runs.size());
  std::map<std::pair<MessageKey, bool>, std::pair<int, int>> where;  // (message, is send) -> (rank, group)
  for (int s = 0; s < stages; ++s) {
    const auto& list = *runs[static_cast<size_t>(s)].actions;
    for (size_t i = 0; i < list.size(); ++i) {
      if (!is_transfer(list[i].kind)) continue;
      where[{message_of(list[i], s, stages, v), is_send(list[i].kind)}] = {s, runs[static_cast<size_t>(s)].group_of[i]};
    }
  }
  for (int s = 0; s < stages; ++s) {
    RankRun& r = runs[static_cast<size_t>(s)];
    r.peer_group.assign(r.actions->size(), {-1, -1});
    for (size_t i = 0; i < r.actions->size(); ++i) {
      const Action& a = (*r.actions)[i];
      if (!is_transfer(a.kind)) continue;
      auto it = where.find({message_of(a, s, stages, v), !is_send(a.kind)});
      TESSERA_CHECK(it != where.end(), "{} on pipeline rank {} has no matching transfer", to_string(a), s);
      r.peer_group[i] = it->second;
    }
  }
}

RankRun prepare(const std::vector<Action>& actions, int virtual_stages) {
  RankRun r;
  r.actions = &actions;
  r.plan = plan_stream_transfers(actions, virtual_stages);
  r.group_of.assign(actions.size(), -1);
  for (size_t k = 0; k < r.plan.size(); ++k) {
    if (r.plan[k].group.empty()) continue;
    for (size_t i : r.plan[k].group) r.group_of[i] = static_cast<int>(r.group_steps.size());
    r.group_steps.push_back(k);
  }
  r.finished.assign(r.group_steps.size(), false);
  // A compute action's receive: the RecvAct / RecvGrad of the same microbatch and chunk.
  std::map<std::tuple<ActionKind, int, int>, int> receives;
  for (size_t i = 0; i < actions.size(); ++i) {
    const Action& a = actions[i];
    if (a.kind == ActionKind::RecvAct || a.kind == ActionKind::RecvGrad) {
      receives[{a.kind, a.microbatch, a.chunk}] = r.group_of[i];
    }
  }
  r.receive_group.assign(r.plan.size(), -1);
  for (size_t k = 0; k < r.plan.size(); ++k) {
    if (!r.plan[k].group.empty()) continue;
    const Action& a = actions[r.plan[k].compute];
    const ActionKind recv = a.kind == ActionKind::Forward ? ActionKind::RecvAct : ActionKind::RecvGrad;
    auto it = receives.find({recv, a.microbatch, a.chunk});
    if (it != receives.end()) r.receive_group[k] = it->second;
  }
  return r;
}

// One round of progress on one rank; true when anything moved.
bool advance(RankRun& r, const std::vector<RankRun>& all) {
  bool moved = false;
  while (r.compute_pos < r.plan.size()) {
    const int needs = r.receive_group[r.compute_pos];
    if (needs >= 0 && !r.finished[static_cast<size_t>(needs)]) break;
    ++r.compute_pos;
    moved = true;
  }
  // A group starts after the previous one and after the compute the plan puts before it.
  while (r.started < r.group_steps.size() && (r.started == 0 || r.finished[r.started - 1]) &&
         r.compute_pos >= r.group_steps[r.started]) {
    ++r.started;
    moved = true;
  }
  for (size_t g = 0; g < r.started; ++g) {
    if (r.finished[g]) continue;
    bool all_met = true;
    for (size_t i : r.plan[r.group_steps[g]].group) {
      const auto [peer, peer_group] = r.peer_group[i];
      all_met = all_met && all[static_cast<size_t>(peer)].started > static_cast<size_t>(peer_group);
    }
    if (all_met) {
      r.finished[g] = true;
      moved = true;
    }
  }
  return moved;
}

// NCCL matches the sends from one rank to another with that rank's receives from it in the order
// both were issued, whatever they carry: the first mismatch, or empty.
std::string fifo_mismatch(const std::vector<std::vector<Action>>& ranks, int v) {
  const int stages = static_cast<int>(ranks.size());
  std::map<std::pair<int, int>, std::vector<MessageKey>> sent, received;  // (from rank, to rank)
  for (int s = 0; s < stages; ++s) {
    for (const Action& a : ranks[static_cast<size_t>(s)]) {
      if (!is_transfer(a.kind)) continue;
      const int peer = transfer_peer(a, s, stages, v).stage;
      if (is_send(a.kind)) {
        sent[{s, peer}].push_back(message_of(a, s, stages, v));
      } else {
        received[{peer, s}].push_back(message_of(a, s, stages, v));
      }
    }
  }
  for (const auto& [link, messages] : sent) {
    const auto& other = received[link];
    for (size_t k = 0; k < messages.size() && k < other.size(); ++k) {
      if (messages[k] == other[k]) continue;
      const auto& [act, from_stage, mb] = messages[k];
      return fmt::format("transfer {} from rank {} to rank {} is the {} of microbatch {} from global stage {}, but the "
                         "receiver expects another message there (in-order matching would swap them)",
                         k, link.first, link.second, act ? "activation" : "gradient", mb, from_stage);
    }
  }
  return "";
}

std::string where_stopped(const RankRun& r, int rank) {
  const auto& list = *r.actions;
  // Group steps are skipped by the compute stream, so compute_pos may point at one.
  size_t k = r.compute_pos;
  while (k < r.plan.size() && !r.plan[k].group.empty()) ++k;
  const std::string compute = k < r.plan.size() ? to_string(list[r.plan[k].compute]) : "done";
  std::string stream = "done";
  for (size_t g = 0; g < r.group_steps.size(); ++g) {
    if (!r.finished[g]) {
      stream = fmt::format("{} group from {}", g < r.started ? "started" : "waiting",
                           to_string(list[r.plan[r.group_steps[g]].group.front()]));
      break;
    }
  }
  return fmt::format("rank {}: compute at {}, transfers at {}", rank, compute, stream);
}

}  // namespace

std::vector<StreamStep> plan_stream_transfers(const std::vector<Action>& actions, int virtual_stages) {
  // The compute steps. Interleaved lists (make_schedule: warm-up forwards, then forward/backward
  // pairs, then cool-down backwards) take each steady-state pair as one step, as Megatron's
  // interleaved schedule does: with one group per compute there, two neighbours can each send
  // before they receive, and a stream-ordered send waits for its receive. Elsewhere each compute
  // action is a step (Megatron's send_forward_recv_backward / send_backward_recv_forward); pairing
  // there would hold each activation back by a backward and stretch the 1F1B bubble.
  std::vector<std::vector<size_t>> steps;
  std::vector<size_t> computes;
  for (size_t i = 0; i < actions.size(); ++i) {
    if (!is_transfer(actions[i].kind)) computes.push_back(i);
  }
  // Forwards before the first backward: the warm-up and the first steady-state forward, or all of
  // them (no steady state; a single pair at the end reads the same and is not taken as one).
  size_t forwards = 0;
  for (size_t c : computes) forwards += actions[c].kind == ActionKind::Forward ? 1 : 0;
  size_t leading = 0;
  while (leading < computes.size() && actions[computes[leading]].kind == ActionKind::Forward) ++leading;
  const size_t warmup = leading < forwards ? leading - 1 : leading;
  const size_t steady_end = warmup + 2 * (forwards - warmup);
  for (size_t j = 0; j < computes.size(); ++j) {
    const bool pair = virtual_stages > 1 && j >= warmup && j + 1 < steady_end;
    steps.push_back(pair ? std::vector<size_t>{computes[j], computes[j + 1]} : std::vector<size_t>{computes[j]});
    if (pair) ++j;
  }
  // A compute action's receive comes right before it in the list, its send right after.
  const auto transfers_around = [&](const std::vector<size_t>& step, bool receives) {
    std::vector<size_t> out;
    for (size_t c : step) {
      if (receives && c > 0 && is_transfer(actions[c - 1].kind) && !is_send(actions[c - 1].kind)) out.push_back(c - 1);
      if (!receives && c + 1 < actions.size() && is_send(actions[c + 1].kind)) out.push_back(c + 1);
    }
    return out;
  };
  // One group between consecutive steps: the sends of the one before, the receives of the next.
  std::vector<StreamStep> plan;
  std::vector<size_t> pending = steps.empty() ? std::vector<size_t>{} : transfers_around(steps.front(), true);
  for (size_t k = 0; k < steps.size(); ++k) {
    if (!pending.empty()) plan.push_back({std::move(pending), 0});
    for (size_t c : steps[k]) plan.push_back({{}, c});
    pending = transfers_around(steps[k], false);
    if (k + 1 < steps.size()) {
      const auto next = transfers_around(steps[k + 1], true);
      pending.insert(pending.end(), next.begin(), next.end());
    }
  }
  if (!pending.empty()) plan.push_back({std::move(pending), 0});
  return plan;
}

std::string check_stream_ordered_transfers(const std::vector<std::vector<Action>>& ranks, int virtual_stages) {
  std::string mismatch = fifo_mismatch(ranks, virtual_stages);
  if (!mismatch.empty()) return mismatch;
  std::vector<RankRun> runs;
  runs.reserve(ranks.size());
  for (const auto& list : ranks) runs.push_back(prepare(list, virtual_stages));
  link_peers(runs, virtual_stages);
  for (bool moved = true; moved;) {
    moved = false;
    for (RankRun& r : runs) moved = advance(r, runs) || moved;
  }
  std::string stuck;
  for (size_t s = 0; s < runs.size(); ++s) {
    if (!runs[s].done()) stuck += (stuck.empty() ? "" : "; ") + where_stopped(runs[s], static_cast<int>(s));
  }
  return stuck.empty() ? "" : "deadlock under stream-ordered transfer groups: " + stuck;
}

}  // namespace tessera
