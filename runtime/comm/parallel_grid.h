// ParallelGrid: world = tp x dp x pp in Megatron order, with the tp/dp/pp sub-communicators.
// GridLayout is the pure rank arithmetic (no MPI), ParallelGrid adds the groups.
//
// Order: TP ranks are adjacent (they exchange the most data, every layer), then DP, then PP:
//
//   world_rank = pp_rank * (dp * tp) + dp_rank * tp + tp_rank
//
// Worked example, 8 ranks with tp = 2, dp = 2, pp = 2:
//
//   world rank   0  1  2  3  4  5  6  7
//   tp_rank      0  1  0  1  0  1  0  1
//   dp_rank      0  0  1  1  0  0  1  1
//   pp_rank      0  0  0  0  1  1  1  1
//
//   tp groups: {0,1} {2,3} {4,5} {6,7}   (a stage's replica: its layers split two ways)
//   dp groups: {0,2} {1,3} {4,6} {5,7}   (same shard of the same stage: gradients averaged)
//   pp groups: {0,4} {1,5} {2,6} {3,7}   (one pipeline: stage 0 sends activations to stage 1)
//
// Stage 0 is world ranks 0-3, stage 1 is 4-7; world rank 1's next stage is world rank 5.
// Every group lists its members in rank order, so a rank's position in a group equals its
// coordinate: rank 6's dp group is {4,6} and it is dp rank 1 there. See docs/parallel_grid.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"

namespace tessera {

struct GridCoord {
  int tp = 0;
  int dp = 0;
  int pp = 0;
  bool operator==(const GridCoord&) const = default;
};

class GridLayout {
 public:
  // dp = 0 means auto: world / (tp * pp). Throws InputError naming the config fields when
  // the sizes do not multiply to the world size.
  GridLayout(int world_size, int tp, int pp, int dp = 0);

  int world_size() const { return world_size_; }
  int tp_size() const { return tp_; }
  int dp_size() const { return dp_; }
  int pp_size() const { return pp_; }

  int world_rank(GridCoord coord) const;
  GridCoord coord(int world_rank) const;
  // World ranks of the group that contains `world_rank`, ordered by rank in that group.
  std::vector<int> tp_group(int world_rank) const;
  std::vector<int> dp_group(int world_rank) const;
  std::vector<int> pp_group(int world_rank) const;
  // World rank of the pipeline stage `delta` stages away (same tp and dp coordinates), or -1
  // past either end; with wrap, stages wrap around (interleaved schedules).
  int pp_neighbor(int world_rank, int delta, bool wrap = false) const;
  // The table and groups as in the header comment, for logs and docs.
  std::string describe() const;

 private:
  int world_size_;
  int tp_;
  int pp_;
  int dp_;
};

class ParallelGrid {
 public:
  // Collective over `world`: every rank makes the three groups by split, in the same order.
  // `world` must outlive the grid. Sub-communicators are named "tp", "dp" and "pp".
  ParallelGrid(Communicator& world, int tp, int pp, int dp = 0);

  const GridLayout& layout() const { return layout_; }
  Communicator& world() const { return world_; }
  Communicator& tp() const { return *tp_; }
  Communicator& dp() const { return *dp_; }
  Communicator& pp() const { return *pp_; }

  int world_rank() const { return world_.rank(); }
  int world_size() const { return world_.size(); }
  int tp_rank() const { return coord_.tp; }
  int dp_rank() const { return coord_.dp; }
  int pp_rank() const { return coord_.pp; }
  int tp_size() const { return layout_.tp_size(); }
  int dp_size() const { return layout_.dp_size(); }
  int pp_size() const { return layout_.pp_size(); }
  bool is_first_stage() const { return coord_.pp == 0; }
  bool is_last_stage() const { return coord_.pp == layout_.pp_size() - 1; }

  // Neighbouring pipeline stages: as a rank in pp() (for send/recv there) and as a world
  // rank (for messages); -1 past the ends unless wrap.
  int pp_prev_rank(bool wrap = false) const;
  int pp_next_rank(bool wrap = false) const;
  int pp_prev_world_rank(bool wrap = false) const;
  int pp_next_world_rank(bool wrap = false) const;

  // Sets the step reported in timeout messages on all four groups.
  void set_step(int64_t step);

 private:
  Communicator& world_;
  GridLayout layout_;
  GridCoord coord_;
  std::unique_ptr<Communicator> tp_;
  std::unique_ptr<Communicator> dp_;
  std::unique_ptr<Communicator> pp_;
};

}  // namespace tessera
