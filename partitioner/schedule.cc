// Pipeline schedules: GPipe, 1F1B and interleaved 1F1B as lists of actions per pipeline rank.
#include "partitioner/schedule.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {
namespace {

// All three schedules are one loop: `warmup` forwards, then pairs of (forward, backward), then
// the backwards left over. They differ only in the warm-up length and in which (microbatch,
// chunk) the k-th forward and the k-th backward of the rank run.
struct ComputeOrder {
  int total = 0;   // microbatches * virtual_stages
  int warmup = 0;  // forwards before the first backward
  int stages = 1;
  int chunks = 1;
};

// Megatron's get_model_chunk_id / get_microbatch_id_in_model_chunk: virtual microbatches go
// in groups of `stages` microbatches; a group runs through chunk 0, then chunk 1, ... for
// forwards, and through chunk v-1 down to 0 for backwards. With one chunk this is the
// identity, k -> (microbatch k, chunk 0).
Action virtual_microbatch(const ComputeOrder& o, int k, bool forward) {
  const int group_size = o.stages * o.chunks;
  const int in_group = k % group_size;
  int chunk = in_group / o.stages;
  if (!forward) chunk = o.chunks - 1 - chunk;
  const int microbatch = (k / group_size) * o.stages + in_group % o.stages;
  return {forward ? ActionKind::Forward : ActionKind::Backward, microbatch, chunk};
}

ComputeOrder compute_order(ScheduleKind kind, int stage, int stages, int microbatches, int v) {
  ComputeOrder o;
  o.total = microbatches * v;
  o.stages = stages;
  o.chunks = v;
  switch (kind) {
    case ScheduleKind::GPipe:
      o.warmup = o.total;
      break;
    case ScheduleKind::OneFOneB:
      o.warmup = std::min(stages - stage - 1, microbatches);
      break;
    case ScheduleKind::Interleaved:
      // Megatron: with exactly `stages` microbatches, all forwards run first on every rank.
      if (microbatches == stages) {
        o.warmup = o.total;
      } else {
        o.warmup = std::min((stages - stage - 1) * 2 + (v - 1) * stages, o.total);
      }
      break;
  }
  return o;
}

// Wraps one compute action with its receive before and its send after, where the global stage
// has a neighbour in that direction.
void append_with_transfers(std::vector<Action>& out, const Action& compute, int stage, int stages,
                           int v) {
  const int g = global_stage(stage, stages, compute.chunk);
  const bool first = g == 0;
  const bool last = g == stages * v - 1;
  const int mb = compute.microbatch, c = compute.chunk;
  if (compute.kind == ActionKind::Forward) {
    if (!first) out.push_back({ActionKind::RecvAct, mb, c});
    out.push_back(compute);
    if (!last) out.push_back({ActionKind::SendAct, mb, c});
  } else {
    if (!last) out.push_back({ActionKind::RecvGrad, mb, c});
    out.push_back(compute);
    if (!first) out.push_back({ActionKind::SendGrad, mb, c});
  }
}

}  // namespace

std::string action_kind_name(ActionKind kind) {
  switch (kind) {
    case ActionKind::RecvAct: return "recv_act";
    case ActionKind::Forward: return "forward";
    case ActionKind::SendAct: return "send_act";
    case ActionKind::RecvGrad: return "recv_grad";
    case ActionKind::Backward: return "backward";
    case ActionKind::SendGrad: return "send_grad";
  }
  return "?";
}

std::string to_string(const Action& action) {
  return fmt::format("{}(mb {}, chunk {})", action_kind_name(action.kind), action.microbatch,
                     action.chunk);
}

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "gpipe") return ScheduleKind::GPipe;
  if (name == "1f1b") return ScheduleKind::OneFOneB;
  if (name == "interleaved") return ScheduleKind::Interleaved;
  throw InputError(fmt::format(
      "unknown pipeline schedule '{}' (expected gpipe, 1f1b or interleaved)", name));
}

std::string schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::GPipe: return "gpipe";
    case ScheduleKind::OneFOneB: return "1f1b";
    case ScheduleKind::Interleaved: return "interleaved";
  }
  return "?";
}

void check_schedule(ScheduleKind kind, int stages, int microbatches, int virtual_stages) {
  const std::string name = schedule_name(kind);
  TESSERA_REQUIRE(stages >= 1, "{} schedule: pipeline stages must be at least 1, not {}", name,
                  stages);
  TESSERA_REQUIRE(microbatches >= 1, "{} schedule: microbatches must be at least 1, not {}", name,
                  microbatches);
  TESSERA_REQUIRE(virtual_stages >= 1, "{} schedule: virtual stages must be at least 1, not {}",
                  name, virtual_stages);
  if (kind != ScheduleKind::Interleaved) {
    TESSERA_REQUIRE(virtual_stages == 1,
                    "{} schedule: virtual stages = {} needs the interleaved schedule (use 1)",
                    name, virtual_stages);
    return;
  }
  TESSERA_REQUIRE(virtual_stages > 1,
                  "interleaved schedule needs virtual stages > 1, not {} (use 1f1b for 1)",
                  virtual_stages);
  TESSERA_REQUIRE(stages > 1,
                  "interleaved schedule needs at least 2 pipeline stages, not {} (use 1f1b)",
                  stages);
  TESSERA_REQUIRE(microbatches % stages == 0,
                  "interleaved schedule needs the number of microbatches ({}) to be divisible by "
                  "the pipeline stages ({})",
                  microbatches, stages);
}

std::vector<Action> make_schedule(ScheduleKind kind, int stage, int stages, int microbatches,
                                  int virtual_stages) {
  check_schedule(kind, stages, microbatches, virtual_stages);
  TESSERA_CHECK(stage >= 0 && stage < stages, "pipeline stage {} is outside 0..{}", stage,
                stages - 1);
  const ComputeOrder o = compute_order(kind, stage, stages, microbatches, virtual_stages);
  std::vector<Action> out;
  out.reserve(static_cast<size_t>(o.total) * 6);
  auto emit = [&](int k, bool forward) {
    append_with_transfers(out, virtual_microbatch(o, k, forward), stage, stages, virtual_stages);
  };
  for (int k = 0; k < o.warmup; ++k) emit(k, true);
  for (int k = 0; k < o.total - o.warmup; ++k) {
    emit(o.warmup + k, true);
    emit(k, false);
  }
  for (int k = o.total - o.warmup; k < o.total; ++k) emit(k, false);
  return out;
}

std::vector<Action> make_forward_schedule(int stage, int stages, int microbatches, int virtual_stages) {
  TESSERA_REQUIRE(stages >= 1 && microbatches >= 1 && virtual_stages >= 1,
                  "forward schedule: stages ({}), microbatches ({}) and virtual stages ({}) must be at least 1",
                  stages, microbatches, virtual_stages);
  TESSERA_CHECK(stage >= 0 && stage < stages, "pipeline stage {} is outside 0..{}", stage, stages - 1);
  std::vector<Action> out;
  for (int mb = 0; mb < microbatches; ++mb) {
    for (int c = 0; c < virtual_stages; ++c) {
      append_with_transfers(out, {ActionKind::Forward, mb, c}, stage, stages, virtual_stages);
    }
  }
  return out;
}

std::vector<std::vector<Action>> make_all_schedules(ScheduleKind kind, int stages,
                                                    int microbatches, int virtual_stages) {
  check_schedule(kind, stages, microbatches, virtual_stages);
  std::vector<std::vector<Action>> all;
  all.reserve(static_cast<size_t>(stages));
  for (int s = 0; s < stages; ++s) {
    all.push_back(make_schedule(kind, s, stages, microbatches, virtual_stages));
  }
  return all;
}

StageRef transfer_peer(const Action& action, int stage, int stages, int virtual_stages) {
  const int g = global_stage(stage, stages, action.chunk);
  int peer = 0;
  switch (action.kind) {
    case ActionKind::SendAct:
    case ActionKind::RecvGrad: peer = g + 1; break;
    case ActionKind::RecvAct:
    case ActionKind::SendGrad: peer = g - 1; break;
    default:
      TESSERA_CHECK(false, "{} is not a transfer", to_string(action));
  }
  TESSERA_CHECK(peer >= 0 && peer < stages * virtual_stages,
                "{} on stage {} of {} (x{} chunks) has no peer stage", to_string(action), stage,
                stages, virtual_stages);
  return {peer % stages, peer / stages};
}

int peak_in_flight(const std::vector<Action>& actions) {
  int live = 0, peak = 0;
  for (const Action& a : actions) {
    if (a.kind == ActionKind::Forward) peak = std::max(peak, ++live);
    if (a.kind == ActionKind::Backward) --live;
  }
  return peak;
}

int expected_peak_in_flight(ScheduleKind kind, int stage, int stages, int microbatches,
                            int virtual_stages) {
  check_schedule(kind, stages, microbatches, virtual_stages);
  const ComputeOrder o = compute_order(kind, stage, stages, microbatches, virtual_stages);
  // The steady state runs one more forward before each backward.
  return std::min(o.warmup + 1, o.total);
}

}  // namespace tessera
