// Shared by the schedule and schedule-simulator tests: every valid (schedule, stages,
// microbatches, virtual stages) combination, and readable Catch output for actions.
#pragma once

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "partitioner/schedule.h"

// Failed checks print actions as "forward(mb 3, chunk 0)".
namespace Catch {
template <>
struct StringMaker<tessera::Action> {
  static std::string convert(const tessera::Action& a) { return tessera::to_string(a); }
};
}  // namespace Catch

namespace tessera::schedule_test {

struct Params {
  ScheduleKind kind;
  int p, m, v;
};

inline constexpr ScheduleKind kKinds[] = {ScheduleKind::GPipe, ScheduleKind::OneFOneB, ScheduleKind::Interleaved};

// The rules of check_schedule, written out independently.
inline bool is_valid(ScheduleKind kind, int p, int m, int v) {
  return kind == ScheduleKind::Interleaved ? v > 1 && p > 1 && m % p == 0 : v == 1;
}

// Every valid combination of stages 1..8, microbatches 1..16, virtual stages 1..4.
inline std::vector<Params> all_valid_params() {
  std::vector<Params> out;
  for (ScheduleKind kind : kKinds) {
    for (int p = 1; p <= 8; ++p) {
      for (int m = 1; m <= 16; ++m) {
        for (int v = 1; v <= 4; ++v) {
          if (is_valid(kind, p, m, v)) out.push_back({kind, p, m, v});
        }
      }
    }
  }
  return out;
}

inline std::string describe(const Params& x) {
  return fmt::format("{} p={} m={} v={}", schedule_name(x.kind), x.p, x.m, x.v);
}

}  // namespace tessera::schedule_test
