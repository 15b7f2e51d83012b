// GridLayout: Megatron-order coordinates, groups and validation, without MPI.
#include <catch2/catch.hpp>

#include <set>

#include "runtime/comm/parallel_grid.h"
#include "core/error.h"

using tessera::GridCoord;
using tessera::GridLayout;
using Group = std::vector<int>;

TEST_CASE("grid layout: the 8-rank worked example", "[grid]") {
  const GridLayout g(8, /*tp=*/2, /*pp=*/2, /*dp=*/0);
  CHECK(g.dp_size() == 2);
  CHECK(g.coord(5) == GridCoord{1, 0, 1});
  CHECK(g.coord(6) == GridCoord{0, 1, 1});
  CHECK(g.world_rank({1, 1, 0}) == 3);
  CHECK(g.tp_group(5) == Group{4, 5});
  CHECK(g.dp_group(6) == Group{4, 6});
  CHECK(g.dp_group(1) == Group{1, 3});
  CHECK(g.pp_group(2) == Group{2, 6});
  CHECK(g.pp_neighbor(1, +1) == 5);
  CHECK(g.pp_neighbor(5, -1) == 1);
  CHECK(g.pp_neighbor(5, +1) == -1);
  CHECK(g.pp_neighbor(5, +1, /*wrap=*/true) == 1);
  CHECK(g.describe() ==
        "8 ranks, tp = 2, dp = 2, pp = 2\n"
        "  world rank   0  1  2  3  4  5  6  7\n"
        "  tp_rank      0  1  0  1  0  1  0  1\n"
        "  dp_rank      0  0  1  1  0  0  1  1\n"
        "  pp_rank      0  0  0  0  1  1  1  1\n"
        "  tp groups: {0,1} {2,3} {4,5} {6,7}\n"
        "  dp groups: {0,2} {1,3} {4,6} {5,7}\n"
        "  pp groups: {0,4} {1,5} {2,6} {3,7}\n");
}

TEST_CASE("grid layout: every shape partitions the world consistently", "[grid]") {
  for (int world : {1, 2, 3, 4, 6, 8, 12, 16}) {
    for (int tp = 1; tp <= world; ++tp) {
      for (int pp = 1; pp <= world; ++pp) {
        if (world % (tp * pp) != 0) continue;
        INFO("world " << world << " tp " << tp << " pp " << pp);
        const GridLayout g(world, tp, pp);
        REQUIRE(g.tp_size() * g.dp_size() * g.pp_size() == world);
        std::set<Group> tp_groups, dp_groups, pp_groups;
        for (int r = 0; r < world; ++r) {
          const GridCoord c = g.coord(r);
          CHECK(g.world_rank(c) == r);
          CHECK(r == c.pp * g.dp_size() * tp + c.dp * tp + c.tp);
          // A rank's position in each group is its coordinate along it.
          CHECK(g.tp_group(r)[c.tp] == r);
          CHECK(g.dp_group(r)[c.dp] == r);
          CHECK(g.pp_group(r)[c.pp] == r);
          // TP ranks are adjacent.
          CHECK(g.tp_group(r).back() - g.tp_group(r).front() == tp - 1);
          tp_groups.insert(g.tp_group(r));
          dp_groups.insert(g.dp_group(r));
          pp_groups.insert(g.pp_group(r));
          CHECK(g.pp_neighbor(r, +1) == (c.pp + 1 < pp ? r + g.dp_size() * tp : -1));
        }
        CHECK(static_cast<int>(tp_groups.size()) == world / tp);
        CHECK(static_cast<int>(dp_groups.size()) == world / g.dp_size());
        CHECK(static_cast<int>(pp_groups.size()) == world / pp);
      }
    }
  }
}

TEST_CASE("grid layout: validation names the config fields", "[grid]") {
  auto error_of = [](int world, int tp, int pp, int dp) -> std::string {
    try {
      GridLayout g(world, tp, pp, dp);
    } catch (const tessera::InputError& e) {
      return e.what();
    }
    return "";
  };
  CHECK(error_of(8, 3, 1, 0) ==
        "parallel.tensor_model_parallel_size (3) x parallel.pipeline_model_parallel_size (1) = 3 must divide the "
        "world size 8");
  CHECK(error_of(8, 2, 2, 4) ==
        "parallel.data_parallel_size (4) x tensor_model_parallel_size (2) x pipeline_model_parallel_size (2) = 16 "
        "must equal the world size 8 (use data_parallel_size: auto for 2)");
  CHECK(error_of(8, 0, 1, 0) == "parallel.tensor_model_parallel_size must be >= 1, got 0");
  CHECK(error_of(8, 1, -2, 0) == "parallel.pipeline_model_parallel_size must be >= 1, got -2");
  CHECK(error_of(8, 2, 2, 2).empty());
}
