// The MFU roof's guard against a start-up measurement slowed by other work: roof_at_least.
#include <catch2/catch.hpp>

#include "runtime/train/gemm_roof.h"

using tessera::roof_at_least;

TEST_CASE("mfu roof: kept while no step outruns it", "[gemm_roof]") {
  int measured = 0;
  CHECK(roof_at_least(400e9, 300e9, [&] { return ++measured, 1e9; }) == 400e9);
  CHECK(roof_at_least(400e9, 400e9, [&] { return ++measured, 1e9; }) == 400e9);
  CHECK(measured == 0);
}

TEST_CASE("mfu roof: measured again when a step outruns it, and never below that step", "[gemm_roof]") {
  // A start-up measurement on one free core of two (215 GFLOP/s), a step at 390: measured again.
  CHECK(roof_at_least(215e9, 390e9, [] { return 430e9; }) == 430e9);
  // Still disturbed the second time: the step's own rate is the most that is known.
  CHECK(roof_at_least(215e9, 390e9, [] { return 200e9; }) == 390e9);
}
