// Pipeline schedules without MPI: each microbatch once per chunk, sends and receives pairing up
// across ranks in order, the Megatron orders, in-flight bounds and parameter errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "partitioner/schedule.h"
#include "core/error.h"
#include "tests/partitioner/schedule_test_params.h"

using tessera::Action;
using tessera::ActionKind;
using tessera::ScheduleKind;
using namespace tessera::schedule_test;

namespace {

// The compute actions only, "F0 F1 B0 ..." (with ".chunk" when v > 1), for golden orders.
std::string compute_order(const std::vector<Action>& list, int v) {
  std::string out;
  for (const Action& a : list) {
    if (a.kind != ActionKind::Forward && a.kind != ActionKind::Backward) continue;
    if (!out.empty()) out += ' ';
    out += fmt::format("{}{}", a.kind == ActionKind::Forward ? 'F' : 'B', a.microbatch);
    if (v > 1) out += fmt::format(".{}", a.chunk);
  }
  return out;
}

bool is_compute(ActionKind k) { return k == ActionKind::Forward || k == ActionKind::Backward; }

}  // namespace

TEST_CASE("schedule: names parse and print", "[schedule]") {
  for (ScheduleKind k : {ScheduleKind::GPipe, ScheduleKind::OneFOneB, ScheduleKind::Interleaved}) {
    CHECK(tessera::parse_schedule(tessera::schedule_name(k)) == k);
  }
  CHECK(tessera::schedule_name(ScheduleKind::OneFOneB) == "1f1b");
  CHECK(tessera::to_string(Action{ActionKind::RecvGrad, 3, 1}) == "recv_grad(mb 3, chunk 1)");
  CHECK_THROWS_AS(tessera::parse_schedule("zb-h1"), tessera::InputError);
  CHECK_THROWS_WITH(tessera::parse_schedule("1F1B"),
                    "unknown pipeline schedule '1F1B' (expected gpipe, 1f1b or interleaved)");
}

TEST_CASE("schedule: invalid parameters give clear errors", "[schedule]") {
  using tessera::check_schedule;
  using tessera::make_schedule;
  CHECK_THROWS_WITH(make_schedule(ScheduleKind::Interleaved, 0, 4, 6, 2),
                    "interleaved schedule needs the number of microbatches (6) to be divisible "
                    "by the pipeline stages (4)");
  CHECK_THROWS_WITH(check_schedule(ScheduleKind::Interleaved, 4, 8, 1),
                    "interleaved schedule needs virtual stages > 1, not 1 (use 1f1b for 1)");
  CHECK_THROWS_WITH(check_schedule(ScheduleKind::Interleaved, 1, 8, 2),
                    "interleaved schedule needs at least 2 pipeline stages, not 1 (use 1f1b)");
  CHECK_THROWS_WITH(check_schedule(ScheduleKind::OneFOneB, 4, 8, 2),
                    "1f1b schedule: virtual stages = 2 needs the interleaved schedule (use 1)");
  CHECK_THROWS_WITH(check_schedule(ScheduleKind::GPipe, 4, 0, 1),
                    "gpipe schedule: microbatches must be at least 1, not 0");
  CHECK_THROWS_WITH(check_schedule(ScheduleKind::GPipe, 0, 4, 1),
                    "gpipe schedule: pipeline stages must be at least 1, not 0");
  CHECK_THROWS_WITH(check_schedule(ScheduleKind::Interleaved, 2, 4, 0),
                    "interleaved schedule: virtual stages must be at least 1, not 0");
  CHECK_THROWS_AS(check_schedule(ScheduleKind::Interleaved, 4, 6, 2), tessera::InputError);
  // A stage outside the pipeline is a caller bug, not user input.
  CHECK_THROWS_AS(make_schedule(ScheduleKind::OneFOneB, 4, 4, 8), tessera::Error);
  CHECK_NOTHROW(check_schedule(ScheduleKind::Interleaved, 4, 12, 3));
  // check_schedule accepts exactly the combinations the rules allow.
  int valid = 0;
  for (ScheduleKind kind : kKinds) {
    for (int p = 1; p <= 8; ++p) {
      for (int m = 1; m <= 16; ++m) {
        for (int v = 1; v <= 4; ++v) {
          INFO(describe({kind, p, m, v}));
          bool accepted = true;
          try {
            check_schedule(kind, p, m, v);
          } catch (const tessera::InputError&) {
            accepted = false;
          }
          REQUIRE(accepted == is_valid(kind, p, m, v));
          valid += accepted ? 1 : 0;
        }
      }
    }
  }
  // GPipe and 1F1B: 8 * 16 each; interleaved: 26 (p, m) pairs with m % p == 0, p >= 2, times 3 v.
  CHECK(valid == 2 * 128 + 26 * 3);
  CHECK(all_valid_params().size() == static_cast<size_t>(valid));
}

TEST_CASE("schedule: golden orders", "[schedule]") {
  using tessera::make_schedule;
  // Megatron 1F1B, p = 4, m = 8: rank 0 warms up with 3 forwards, rank 3 with none.
  CHECK(compute_order(make_schedule(ScheduleKind::OneFOneB, 0, 4, 8), 1) ==
        "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7");
  CHECK(compute_order(make_schedule(ScheduleKind::OneFOneB, 3, 4, 8), 1) ==
        "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7");
  CHECK(compute_order(make_schedule(ScheduleKind::OneFOneB, 0, 4, 2), 1) == "F0 F1 B0 B1");
  CHECK(compute_order(make_schedule(ScheduleKind::GPipe, 1, 2, 3), 1) == "F0 F1 F2 B0 B1 B2");
  // Megatron interleaved, p = 2, m = 4, v = 2, rank 0: warm-up (2-0-1)*2 + (2-1)*2 = 4.
  CHECK(compute_order(make_schedule(ScheduleKind::Interleaved, 0, 2, 4, 2), 2) ==
        "F0.0 F1.0 F0.1 F1.1 F2.0 B0.1 F3.0 B1.1 F2.1 B0.0 F3.1 B1.0 B2.1 B3.1 B2.0 B3.0");
  // Rank 1: warm-up 2.
  CHECK(compute_order(make_schedule(ScheduleKind::Interleaved, 1, 2, 4, 2), 2) ==
        "F0.0 F1.0 F0.1 B0.1 F1.1 B1.1 F2.0 B0.0 F3.0 B1.0 F2.1 B2.1 F3.1 B3.1 B2.0 B3.0");
  // m == p: Megatron runs all forwards first on every rank.
  CHECK(compute_order(make_schedule(ScheduleKind::Interleaved, 1, 2, 2, 2), 2) ==
        "F0.0 F1.0 F0.1 F1.1 B0.1 B1.1 B0.0 B1.0");
  // The transfers around the computes: rank 1 of 2 with v = 2 runs global stages 1 and 3 (the
  // last: no SendAct, no RecvGrad).
  using K = ActionKind;
  const std::vector<Action> rank1 = {
      {K::RecvAct, 0, 0},  {K::Forward, 0, 0},  {K::SendAct, 0, 0},  {K::RecvAct, 1, 0},
      {K::Forward, 1, 0},  {K::SendAct, 1, 0},  {K::RecvAct, 0, 1},  {K::Forward, 0, 1},
      {K::RecvAct, 1, 1},  {K::Forward, 1, 1},  {K::Backward, 0, 1}, {K::SendGrad, 0, 1},
      {K::Backward, 1, 1}, {K::SendGrad, 1, 1}, {K::RecvGrad, 0, 0}, {K::Backward, 0, 0},
      {K::SendGrad, 0, 0}, {K::RecvGrad, 1, 0}, {K::Backward, 1, 0}, {K::SendGrad, 1, 0}};
  CHECK(make_schedule(ScheduleKind::Interleaved, 1, 2, 2, 2) == rank1);
  CHECK(make_schedule(ScheduleKind::OneFOneB, 0, 1, 1) ==
        std::vector<Action>{{ActionKind::Forward, 0, 0}, {ActionKind::Backward, 0, 0}});
}

TEST_CASE("schedule: transfer peers follow the global stage order", "[schedule]") {
  using tessera::StageRef;
  using tessera::transfer_peer;
  // p = 4, v = 2: rank 3 chunk 0 is global stage 3, followed by rank 0 chunk 1 (stage 4).
  CHECK(transfer_peer({ActionKind::SendAct, 0, 0}, 3, 4, 2) == StageRef{0, 1});
  CHECK(transfer_peer({ActionKind::RecvGrad, 5, 0}, 3, 4, 2) == StageRef{0, 1});
  CHECK(transfer_peer({ActionKind::RecvAct, 0, 1}, 0, 4, 2) == StageRef{3, 0});
  CHECK(transfer_peer({ActionKind::SendGrad, 0, 1}, 0, 4, 2) == StageRef{3, 0});
  CHECK(transfer_peer({ActionKind::SendAct, 0, 0}, 1, 4, 1) == StageRef{2, 0});
  CHECK_THROWS_AS(transfer_peer({ActionKind::RecvAct, 0, 0}, 0, 4, 2), tessera::Error);
  CHECK_THROWS_AS(transfer_peer({ActionKind::SendAct, 0, 1}, 3, 4, 2), tessera::Error);
  CHECK_THROWS_AS(transfer_peer({ActionKind::Forward, 0, 0}, 1, 4, 2), tessera::Error);
}

TEST_CASE("schedule: each compute once, transfers adjacent, Megatron orders", "[schedule]") {
  for (const Params& x : all_valid_params()) {
    INFO(describe(x));
    const int last = x.p * x.v - 1;
    for (int s = 0; s < x.p; ++s) {
      INFO("stage " << s);
      const auto list = tessera::make_schedule(x.kind, s, x.p, x.m, x.v);
      std::map<std::pair<int, int>, int> forwarded, backwarded;  // (mb, chunk) -> count
      std::vector<Action> forwards, backwards;
      size_t transfers = 0;
      for (size_t i = 0; i < list.size(); ++i) {
        const Action& a = list[i];
        REQUIRE(a.microbatch >= 0);
        REQUIRE(a.microbatch < x.m);
        REQUIRE(a.chunk >= 0);
        REQUIRE(a.chunk < x.v);
        const int g = tessera::global_stage(s, x.p, a.chunk);
        const int mb = a.microbatch, c = a.chunk;
        const std::pair<int, int> key{mb, c};
        auto before = [&](ActionKind k) { return i > 0 && list[i - 1] == Action{k, mb, c}; };
        auto after = [&](ActionKind k) {
          return i + 1 < list.size() && list[i + 1] == Action{k, mb, c};
        };
        if (a.kind == ActionKind::Forward) {
          ++forwarded[key];
          forwards.push_back(a);
          // A RecvAct right before (unless global stage 0), a SendAct right after (unless last).
          const bool recv = before(ActionKind::RecvAct), send = after(ActionKind::SendAct);
          REQUIRE(recv == (g != 0));
          REQUIRE(send == (g != last));
          transfers += (recv ? 1 : 0) + (send ? 1 : 0);
        } else if (a.kind == ActionKind::Backward) {
          REQUIRE(forwarded[key] == 1);  // backward after its forward
          ++backwarded[key];
          backwards.push_back(a);
          const bool recv = before(ActionKind::RecvGrad), send = after(ActionKind::SendGrad);
          REQUIRE(recv == (g != last));
          REQUIRE(send == (g != 0));
          transfers += (recv ? 1 : 0) + (send ? 1 : 0);
        }
      }
      // Exactly one forward and one backward per (microbatch, chunk), and no stray transfers.
      REQUIRE(forwarded.size() == static_cast<size_t>(x.m * x.v));
      REQUIRE(backwarded.size() == static_cast<size_t>(x.m * x.v));
      for (const auto& [key, n] : forwarded) REQUIRE(n == 1);
      for (const auto& [key, n] : backwarded) REQUIRE(n == 1);
      REQUIRE(list.size() == forwards.size() + backwards.size() + transfers);

      // Per chunk, ascending microbatch order (so gradients accumulate as on one rank).
      for (int c = 0; c < x.v; ++c) {
        int next_f = 0, next_b = 0;
        for (const Action& a : forwards) if (a.chunk == c) REQUIRE(a.microbatch == next_f++);
        for (const Action& a : backwards) if (a.chunk == c) REQUIRE(a.microbatch == next_b++);
      }
      // Megatron's virtual-microbatch order: groups of p microbatches, chunk by chunk.
      for (size_t k = 0; k < forwards.size(); ++k) {
        const int in_group = static_cast<int>(k) % (x.p * x.v);
        const int mb = static_cast<int>(k) / (x.p * x.v) * x.p + in_group % x.p;
        REQUIRE(forwards[k] == Action{ActionKind::Forward, mb, in_group / x.p});
        REQUIRE(backwards[k] == Action{ActionKind::Backward, mb, x.v - 1 - in_group / x.p});
      }
      // Warm-up length: forwards before the first backward, then strict alternation.
      int warmup = 0;
      switch (x.kind) {
        case ScheduleKind::GPipe: warmup = x.m; break;
        case ScheduleKind::OneFOneB: warmup = std::min(x.p - s - 1, x.m); break;
        case ScheduleKind::Interleaved:
          warmup = x.m == x.p ? x.m * x.v
                              : std::min((x.p - s - 1) * 2 + (x.v - 1) * x.p, x.m * x.v);
          break;
      }
      std::string expected;
      for (int k = 0; k < warmup; ++k) expected += 'F';
      for (int k = 0; k < x.m * x.v - warmup; ++k) expected += "FB";
      for (int k = 0; k < warmup; ++k) expected += 'B';
      std::string got;
      for (const Action& a : list) {
        if (is_compute(a.kind)) got += a.kind == ActionKind::Forward ? 'F' : 'B';
      }
      REQUIRE(got == expected);

      // Peak in-flight microbatch-chunks.
      const int peak = tessera::peak_in_flight(list);
      REQUIRE(peak == tessera::expected_peak_in_flight(x.kind, s, x.p, x.m, x.v));
      switch (x.kind) {
        case ScheduleKind::GPipe: REQUIRE(peak == x.m); break;
        case ScheduleKind::OneFOneB:
          REQUIRE(peak == std::min(x.p - s, x.m));
          REQUIRE(peak <= x.p);
          break;
        case ScheduleKind::Interleaved:
          REQUIRE(peak == std::min(warmup + 1, x.m * x.v));
          break;
      }
    }
  }
}

TEST_CASE("schedule: sends and receives pair up across ranks, in order", "[schedule]") {
  // A message: (sending global stage, receiving global stage, microbatch).
  using Message = std::tuple<int, int, int>;
  // Channel: (sending rank, receiving rank, is activation).
  using Channel = std::tuple<int, int, bool>;
  for (const Params& x : all_valid_params()) {
    INFO(describe(x));
    const auto all = tessera::make_all_schedules(x.kind, x.p, x.m, x.v);
    std::map<Channel, std::vector<Message>> sent, received;
    size_t sends = 0;
    for (int s = 0; s < x.p; ++s) {
      for (const Action& a : all[static_cast<size_t>(s)]) {
        if (is_compute(a.kind)) continue;
        const int g = tessera::global_stage(s, x.p, a.chunk);
        const tessera::StageRef peer = tessera::transfer_peer(a, s, x.p, x.v);
        const int pg = tessera::global_stage(peer.stage, x.p, peer.chunk);
        const bool act = a.kind == ActionKind::SendAct || a.kind == ActionKind::RecvAct;
        const bool downstream = a.kind == ActionKind::SendAct || a.kind == ActionKind::RecvGrad;
        REQUIRE(pg == (downstream ? g + 1 : g - 1));
        if (a.kind == ActionKind::SendAct || a.kind == ActionKind::SendGrad) {
          sent[{s, peer.stage, act}].emplace_back(g, pg, a.microbatch);
          ++sends;
        } else {
          received[{peer.stage, s, act}].emplace_back(pg, g, a.microbatch);
        }
      }
    }
    // 2 * m * (p*v - 1) messages; every channel's receive order equals its send order.
    REQUIRE(sends == static_cast<size_t>(2 * x.m * (x.p * x.v - 1)));
    REQUIRE(sent == received);
  }
}
