// Pipeline transfers on an ordered stream (NCCL): the groups the executor issues, every built-in
// schedule running to its end under them, and the checker catching the lists that would hang
// or swap messages.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "partitioner/stream_transfers.h"
#include "tests/partitioner/schedule_test_params.h"

using tessera::Action;
using tessera::ActionKind;
using namespace tessera::schedule_test;

namespace {

// The plan as text: "[1 2] 0 ..." for a group of actions 1 and 2, then compute action 0.
std::string show(const std::vector<tessera::StreamStep>& plan) {
  std::string out;
  for (const auto& step : plan) {
    if (!out.empty()) out += " ";
    if (step.group.empty()) {
      out += std::to_string(step.compute);
      continue;
    }
    out += "[";
    for (size_t k = 0; k < step.group.size(); ++k) {
      if (k > 0) out += " ";
      out += std::to_string(step.group[k]);
    }
    out += "]";
  }
  return out;
}

}  // namespace

TEST_CASE("the stream plan groups each step's sends with the next step's receives", "[schedule]") {
  // 1F1B, 2 stages, 2 microbatches, stage 0: 0 F0, 1 SA0, 2 F1, 3 SA1, 4 RG0, 5 B0, 6 RG1, 7 B1.
  // Megatron's send_forward_recv_backward: the send of microbatch 1 with the receive of 0's gradient.
  const auto first = tessera::make_schedule(tessera::ScheduleKind::OneFOneB, 0, 2, 2);
  CHECK(show(tessera::plan_stream_transfers(first, 1)) == "0 [1] 2 [3 4] 5 [6] 7");
  // Stage 1: 0 RA0, 1 F0, 2 B0, 3 SG0, 4 RA1, 5 F1, 6 B1, 7 SG1.
  const auto last = tessera::make_schedule(tessera::ScheduleKind::OneFOneB, 1, 2, 2);
  CHECK(show(tessera::plan_stream_transfers(last, 1)) == "[0] 1 2 [3 4] 5 6 [7]");
  CHECK(tessera::plan_stream_transfers({}, 1).empty());
}

TEST_CASE("the interleaved plan takes each steady-state forward and backward as one step", "[schedule]") {
  // Interleaved, 2 stages, 4 microbatches, 2 chunks, stage 0 (schedule.h's timeline): the forward
  // of microbatch 2 chunk 0 and the backward of microbatch 0 chunk 1 run back to back, and the
  // group after them sends both results and receives for the next pair (Megatron's
  // send_forward_backward_recv_forward_backward).
  const auto list = tessera::make_schedule(tessera::ScheduleKind::Interleaved, 0, 2, 4, 2);
  const auto plan = tessera::plan_stream_transfers(list, 2);
  size_t pairs = 0;
  for (size_t k = 0; k + 1 < plan.size(); ++k) {
    if (!plan[k].group.empty() || !plan[k + 1].group.empty()) continue;
    const Action& a = list[plan[k].compute];
    const Action& b = list[plan[k + 1].compute];
    if (a.kind == ActionKind::Forward && b.kind == ActionKind::Backward) ++pairs;
  }
  // Warm-up of (2 - 0 - 1) * 2 + (2 - 1) * 2 = 4 forwards, then 8 - 4 = 4 steady pairs.
  CHECK(pairs == 4);
  // Every action appears exactly once in the plan.
  std::vector<int> seen(list.size(), 0);
  for (const auto& step : plan) {
    if (step.group.empty()) ++seen[step.compute];
    for (size_t i : step.group) ++seen[i];
  }
  CHECK(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
}

TEST_CASE("every schedule runs to its end with stream-ordered transfer groups", "[schedule]") {
  for (const Params& x : all_valid_params()) {
    INFO(describe(x));
    CHECK(tessera::check_stream_ordered_transfers(tessera::make_all_schedules(x.kind, x.p, x.m, x.v), x.v) == "");
  }
}

TEST_CASE("the forward-only lists run to their end with stream-ordered transfer groups", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 6; ++m) {
      for (int v = 1; v <= 3; ++v) {
        INFO("p=" << p << " m=" << m << " v=" << v);
        std::vector<std::vector<Action>> ranks;
        for (int s = 0; s < p; ++s) ranks.push_back(tessera::make_forward_schedule(s, p, m, v));
        CHECK(tessera::check_stream_ordered_transfers(ranks, v) == "");
        // Each rank runs every microbatch through each of its chunks.
        for (const auto& list : ranks) {
          CHECK(std::count_if(list.begin(), list.end(),
                              [](const Action& a) { return a.kind == ActionKind::Forward; }) == m * v);
        }
      }
    }
  }
}

TEST_CASE("the checker finds a receive issued ahead of the send the peer waits for", "[schedule]") {
  // Stage 0 asks for microbatch 0's gradient before sending its activation: on a stream the
  // receive holds the send behind it, and stage 1 cannot compute without that activation.
  const std::vector<std::vector<Action>> ranks = {
      {{ActionKind::RecvGrad, 0, 0}, {ActionKind::Forward, 0, 0}, {ActionKind::SendAct, 0, 0},
       {ActionKind::Backward, 0, 0}},
      {{ActionKind::RecvAct, 0, 0}, {ActionKind::Forward, 0, 0}, {ActionKind::Backward, 0, 0},
       {ActionKind::SendGrad, 0, 0}}};
  const std::string error = tessera::check_stream_ordered_transfers(ranks, 1);
  CHECK_THAT(error, Catch::Contains("deadlock") && Catch::Contains("rank 0: compute at backward(mb 0, chunk 0)") &&
                        Catch::Contains("rank 1: compute at forward(mb 0, chunk 0)"));
}

TEST_CASE("the checker finds messages received in another order than sent", "[schedule]") {
  // Matching is by issue order on NCCL: stage 1 taking microbatch 1 first would get microbatch 0.
  const std::vector<std::vector<Action>> ranks = {
      {{ActionKind::Forward, 0, 0}, {ActionKind::SendAct, 0, 0}, {ActionKind::Forward, 1, 0},
       {ActionKind::SendAct, 1, 0}},
      {{ActionKind::RecvAct, 1, 0}, {ActionKind::Forward, 1, 0}, {ActionKind::RecvAct, 0, 0},
       {ActionKind::Forward, 0, 0}}};
  CHECK_THAT(tessera::check_stream_ordered_transfers(ranks, 1),
             Catch::Contains("transfer 0 from rank 0 to rank 1 is the activation of microbatch 0"));
}
