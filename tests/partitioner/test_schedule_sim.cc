// The schedule simulator: no deadlock for any valid schedule, the theoretical bubble with
// uniform costs, exact timings of small cases, and detection of broken action lists.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "partitioner/schedule_sim.h"
#include "core/error.h"
#include "tests/partitioner/schedule_test_params.h"

using tessera::Action;
using tessera::ActionKind;
using tessera::ScheduleKind;
using tessera::StageCosts;
using namespace tessera::schedule_test;

namespace {

// Uneven, deterministic costs: stage g forwards in 1 + (g*7 % 5)/4 ms, backward about twice.
StageCosts uneven_costs(int global_stages, double p2p_ms) {
  StageCosts c;
  for (int g = 0; g < global_stages; ++g) {
    c.forward_ms.push_back(1.0 + (g * 7 % 5) / 4.0);
    c.backward_ms.push_back(2.0 + (g * 3 % 4) / 2.0);
  }
  c.p2p_ms = p2p_ms;
  return c;
}

}  // namespace

TEST_CASE("schedule sim: uniform costs give the theoretical bubble", "[schedule]") {
  // Forward 1, backward 2, no transfer time: every rank idles (p-1) * (f+b) of a makespan of
  // (v*m + p - 1) * (f+b), so bubble = (p-1)/(v*m+p-1) on every rank (v = 1 for GPipe, 1F1B).
  for (const Params& x : all_valid_params()) {
    INFO(describe(x));
    const auto r = tessera::simulate(x.kind, x.p, x.m, x.v, StageCosts::uniform(x.p * x.v, 1, 2));
    REQUIRE(r.ok());
    REQUIRE_FALSE(r.deadlocked);
    const double theory = double(x.p - 1) / (x.v * x.m + x.p - 1);
    REQUIRE(r.makespan_ms == Approx(3.0 * (x.v * x.m + x.p - 1)).margin(1e-9));
    for (int s = 0; s < x.p; ++s) {
      REQUIRE(r.busy_ms[static_cast<size_t>(s)] == Approx(3.0 * x.m * x.v).margin(1e-9));
      REQUIRE(r.bubble[static_cast<size_t>(s)] == Approx(theory).margin(1e-12));
    }
  }
}

TEST_CASE("schedule sim: no deadlock with uneven costs and transfer time", "[schedule]") {
  for (const Params& x : all_valid_params()) {
    INFO(describe(x));
    for (double p2p : {0.0, 0.3, 5.0}) {
      const auto costs = uneven_costs(x.p * x.v, p2p);
      const auto r = tessera::simulate_actions(
          tessera::make_all_schedules(x.kind, x.p, x.m, x.v), x.v, costs);
      REQUIRE(r.ok());
      // Busy time is exactly the rank's chunks' costs, m times; the makespan covers it.
      for (int s = 0; s < x.p; ++s) {
        double busy = 0;
        for (int c = 0; c < x.v; ++c) {
          const auto g = static_cast<size_t>(tessera::global_stage(s, x.p, c));
          busy += x.m * (costs.forward_ms[g] + costs.backward_ms[g]);
        }
        REQUIRE(r.busy_ms[static_cast<size_t>(s)] == Approx(busy));
        REQUIRE(r.makespan_ms >= busy);
        REQUIRE(r.timeline[static_cast<size_t>(s)].size() ==
                tessera::make_schedule(x.kind, s, x.p, x.m, x.v).size());
      }
    }
  }
}

TEST_CASE("schedule sim: exact timings of a small 1F1B", "[schedule]") {
  // p = 2, m = 2, forward 1, backward 2, transfers 0.5 ms.
  //   rank 0: F0 [0,1] F1 [1,2]; grad 0 arrives at 1.5+1 (F0 on rank 1) + 2 (B0) + 0.5 = 5.
  //   rank 1: F0 [1.5,2.5] B0 [2.5,4.5] F1 [4.5,5.5] (act 1 arrived at 2.5) B1 [5.5,7.5].
  //   rank 0: B0 [5,7] B1 [8,10] (grad 1 arrives at 7.5 + 0.5).
  const auto r =
      tessera::simulate(ScheduleKind::OneFOneB, 2, 2, 1, StageCosts::uniform(2, 1, 2, 0.5));
  CHECK(r.makespan_ms == Approx(10.0));
  CHECK(r.busy_ms == std::vector<double>{6.0, 6.0});
  CHECK(r.bubble[0] == Approx(0.4));
  CHECK(r.peak_in_flight == std::vector<int>{2, 1});
  const auto& rank1 = r.timeline[1];
  REQUIRE(rank1.size() == 8);  // the last stage: recv_act, forward, backward, send_grad, twice
  CHECK(rank1[0].action == Action{ActionKind::RecvAct, 0, 0});
  CHECK(rank1[0].end_ms == Approx(1.5));
  CHECK(rank1[1].start_ms == Approx(1.5));
  CHECK(rank1[1].end_ms == Approx(2.5));
  const auto& b1 = r.timeline[0].back();
  CHECK(b1.action == Action{ActionKind::Backward, 1, 0});
  CHECK(b1.start_ms == Approx(8.0));
  CHECK(b1.end_ms == Approx(10.0));
}

TEST_CASE("schedule sim: timelines as text", "[schedule]") {
  const auto costs = StageCosts::uniform(4, 1, 2);
  // The timelines quoted in partitioner/schedule.h.
  CHECK(tessera::render_timeline(tessera::simulate(ScheduleKind::GPipe, 4, 8, 1, costs), 1) ==
        "rank 0  01234567.........aabbccddeeffgghh\n"
        "rank 1  .01234567......aabbccddeeffgghh..\n"
        "rank 2  ..01234567...aabbccddeeffgghh....\n"
        "rank 3  ...01234567aabbccddeeffgghh......\n");
  CHECK(tessera::render_timeline(tessera::simulate(ScheduleKind::OneFOneB, 4, 8, 1, costs), 1) ==
        "rank 0  0123......aa4bb5cc6dd7ee.ff.gg.hh\n"
        "rank 1  .012....aa3bb4cc5dd6ee7ff.gg.hh..\n"
        "rank 2  ..01..aa2bb3cc4dd5ee6ff7gg.hh....\n"
        "rank 3  ...0aa1bb2cc3dd4ee5ff6gg7hh......\n");
  // Interleaved, p = 2, m = 4, v = 2 (forward 1, backward 2 per chunk), derived by hand from
  // Megatron's rules in partitioner/schedule.h, not from the simulator: rank s holds global
  // stages s (chunk 0) and 2 + s (chunk 1). The k-th forward runs microbatch (k / 4) * 2 + k % 2
  // of chunk (k % 4) / 2: (0,c0) (1,c0) (0,c1) (1,c1) (2,c0) (3,c0) (2,c1) (3,c1); the k-th
  // backward the same microbatch of chunk 1 - (k % 4) / 2: (0,c1) (1,c1) (0,c0) (1,c0) (2,c1) ...
  // Warm-up: (p - s - 1) * 2 + (v - 1) * p = 4 forwards on rank 0, 2 on rank 1; then forward and
  // backward in turn; then the remaining backwards. Each action starts when its rank is free
  // and its input is there: F(mb, g) after F(mb, g - 1), B(mb, g) after B(mb, g + 1), and the
  // last stage's B(mb, 3) after its F(mb, 3). Walking both ranks in time:
  //   rank 0: F(0,0) 0-1, F(1,0) 1-2, F(0,2) 2-3 (F(0,1) ended 2), F(1,2) 3-4, F(2,0) 4-5,
  //           B(0,2) 6-8 (waits for B(0,3) 4-6), F(3,0) 8-9, B(1,2) 9-11, F(2,2) 11-12 (F(2,1)
  //           ended 10), B(0,0) 12-14, F(3,2) 14-15, B(1,0) 15-17, B(2,2) 18-20, B(3,2) 21-23,
  //           B(2,0) 23-25, B(3,0) 25-27
  //   rank 1: F(0,1) 1-2, F(1,1) 2-3, F(0,3) 3-4, B(0,3) 4-6, F(1,3) 6-7, B(1,3) 7-9, F(2,1)
  //           9-10, B(0,1) 10-12, F(3,1) 12-13, B(1,1) 13-15, F(2,3) 15-16, B(2,3) 16-18,
  //           F(3,3) 18-19, B(3,3) 19-21, B(2,1) 21-23, B(3,1) 23-25
  // 27 = 8 forwards + 8 backwards of 3 units per rank (24) + (p - 1) * (f + b) = 3.
  const auto inter = tessera::simulate(ScheduleKind::Interleaved, 2, 4, 2, StageCosts::uniform(4, 1, 2));
  CHECK(tessera::render_timeline(inter, 2) ==
        "rank 0  01012.aa3bb2aa3bb.cc.ddccdd\n"
        "chunk   00110 11011100100 11 110000\n"
        "rank 1  .010aa1bb2aa3bb2cc3ddccdd..\n"
        "chunk    001111110000001111110000\n");
  // p = 4, m = 8, v = 2 (the timeline quoted in schedule.h): every rank computes 16 forwards and
  // 16 backwards (48 units); the step is that plus (p - 1) * (f + b) = 9 of fill and drain.
  const auto wide = tessera::simulate(ScheduleKind::Interleaved, 4, 8, 2, StageCosts::uniform(8, 1, 2));
  CHECK(wide.makespan_ms == Approx(57.0));
  // Half the columns at 2 ms each.
  const auto one = tessera::simulate(ScheduleKind::GPipe, 1, 2, 1, StageCosts::uniform(1, 2, 4));
  CHECK(tessera::render_timeline(one, 1, 2.0) == "rank 0  01aabb\n");
}

TEST_CASE("schedule sim: broken lists are reported, not hung", "[schedule]") {
  using K = ActionKind;
  const auto costs = StageCosts::uniform(2, 1, 2);
  // Rank 0 waits for the gradient before sending the activation: a cycle.
  const std::vector<std::vector<Action>> cycle = {
      {{K::Forward, 0, 0}, {K::RecvGrad, 0, 0}, {K::SendAct, 0, 0}, {K::Backward, 0, 0}},
      {{K::RecvAct, 0, 0}, {K::Forward, 0, 0}, {K::Backward, 0, 0}, {K::SendGrad, 0, 0}}};
  const auto r = tessera::simulate_actions(cycle, 1, costs);
  CHECK(r.deadlocked);
  CHECK(r.error ==
        "deadlock: rank 0 waits at action 1 recv_grad(mb 0, chunk 0); "
        "rank 1 waits at action 0 recv_act(mb 0, chunk 0)");

  // A receive of the wrong microbatch takes another one's message; a later receive starves.
  auto wrong_mb = tessera::make_all_schedules(ScheduleKind::OneFOneB, 2, 2);
  wrong_mb[1][0].microbatch = 1;
  CHECK(tessera::simulate_actions(wrong_mb, 1, costs).deadlocked);

  // A send nobody receives.
  const std::vector<std::vector<Action>> extra = {
      {{K::Forward, 0, 0}, {K::SendAct, 0, 0}, {K::Backward, 0, 0}},
      {{K::Forward, 0, 0}, {K::Backward, 0, 0}}};
  const auto e = tessera::simulate_actions(extra, 1, costs);
  CHECK_FALSE(e.deadlocked);
  CHECK(e.error ==
        "1 message(s) never received, e.g. the activation of microbatch 0 sent by rank 0 "
        "(global stage 0)");

  // Transfers with no peer, chunks out of range, and the same message sent twice.
  const auto no_peer = tessera::simulate_actions({{{K::Forward, 0, 0}, {K::SendAct, 0, 0}}}, 1,
                                                 StageCosts::uniform(1, 1, 2));
  CHECK(no_peer.error == "rank 0 has send_act(mb 0, chunk 0), which has no peer stage");
  CHECK(tessera::simulate_actions({{{K::Forward, 0, 1}}}, 1, StageCosts::uniform(1, 1, 2)).error ==
        "rank 0 has forward(mb 0, chunk 1) outside the 1 chunks");
  const std::vector<std::vector<Action>> twice = {
      {{K::SendAct, 0, 0}, {K::SendAct, 0, 0}}, {{K::RecvAct, 0, 0}, {K::RecvAct, 0, 0}}};
  CHECK(tessera::simulate_actions(twice, 1, costs).error ==
        "rank 0 sends send_act(mb 0, chunk 0) twice");

  // Costs must cover every global stage.
  CHECK_THROWS_AS(tessera::simulate(ScheduleKind::Interleaved, 2, 2, 2, costs), tessera::Error);
}
