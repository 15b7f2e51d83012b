// GridLayout arithmetic and the ParallelGrid groups.
#include "runtime/comm/parallel_grid.h"

#include <fmt/format.h>

#include "core/error.h"

namespace tessera {

GridLayout::GridLayout(int world_size, int tp, int pp, int dp) : world_size_(world_size), tp_(tp), pp_(pp), dp_(dp) {
  TESSERA_REQUIRE(world_size >= 1, "the world size must be >= 1, got {}", world_size);
  TESSERA_REQUIRE(tp >= 1, "parallel.tensor_model_parallel_size must be >= 1, got {}", tp);
  TESSERA_REQUIRE(pp >= 1, "parallel.pipeline_model_parallel_size must be >= 1, got {}", pp);
  TESSERA_REQUIRE(dp >= 0, "parallel.data_parallel_size must be >= 1 or auto, got {}", dp);
  TESSERA_REQUIRE(world_size % (tp * pp) == 0,
                  "parallel.tensor_model_parallel_size ({}) x parallel.pipeline_model_parallel_size ({}) = {} must "
                  "divide the world size {}",
                  tp, pp, tp * pp, world_size);
  const int auto_dp = world_size / (tp * pp);
  if (dp == 0) dp_ = auto_dp;
  TESSERA_REQUIRE(dp_ == auto_dp,
                  "parallel.data_parallel_size ({}) x tensor_model_parallel_size ({}) x pipeline_model_parallel_size "
                  "({}) = {} must equal the world size {} (use data_parallel_size: auto for {})",
                  dp, tp, pp, dp * tp * pp, world_size, auto_dp);
}

int GridLayout::world_rank(GridCoord c) const {
  TESSERA_CHECK(c.tp >= 0 && c.tp < tp_ && c.dp >= 0 && c.dp < dp_ && c.pp >= 0 && c.pp < pp_,
                "grid coordinate (tp {}, dp {}, pp {}) outside tp={} dp={} pp={}", c.tp, c.dp, c.pp, tp_, dp_, pp_);
  return c.pp * (dp_ * tp_) + c.dp * tp_ + c.tp;
}

GridCoord GridLayout::coord(int world_rank) const {
  TESSERA_CHECK(world_rank >= 0 && world_rank < world_size_, "world rank {} outside [0, {})", world_rank,
                world_size_);
  return {world_rank % tp_, (world_rank / tp_) % dp_, world_rank / (tp_ * dp_)};
}

std::vector<int> GridLayout::tp_group(int world_rank) const {
  GridCoord c = coord(world_rank);
  std::vector<int> group;
  for (c.tp = 0; c.tp < tp_; ++c.tp) group.push_back(this->world_rank(c));
  return group;
}

std::vector<int> GridLayout::dp_group(int world_rank) const {
  GridCoord c = coord(world_rank);
  std::vector<int> group;
  for (c.dp = 0; c.dp < dp_; ++c.dp) group.push_back(this->world_rank(c));
  return group;
}

std::vector<int> GridLayout::pp_group(int world_rank) const {
  GridCoord c = coord(world_rank);
  std::vector<int> group;
  for (c.pp = 0; c.pp < pp_; ++c.pp) group.push_back(this->world_rank(c));
  return group;
}

int GridLayout::pp_neighbor(int world_rank, int delta, bool wrap) const {
  GridCoord c = coord(world_rank);
  int stage = c.pp + delta;
  if (wrap) {
    stage = ((stage % pp_) + pp_) % pp_;
  } else if (stage < 0 || stage >= pp_) {
    return -1;
  }
  c.pp = stage;
  return this->world_rank(c);
}

std::string GridLayout::describe() const {
  std::string text = fmt::format("{} ranks, tp = {}, dp = {}, pp = {}\n", world_size_, tp_, dp_, pp_);
  auto row = [&](const char* label, auto value) {
    text += fmt::format("  {:<11}", label);
    for (int r = 0; r < world_size_; ++r) text += fmt::format("{:>3}", value(r));
    text += "\n";
  };
  row("world rank", [](int r) { return r; });
  row("tp_rank", [&](int r) { return coord(r).tp; });
  row("dp_rank", [&](int r) { return coord(r).dp; });
  row("pp_rank", [&](int r) { return coord(r).pp; });
  auto groups = [&](const char* label, auto members, auto is_first) {
    text += fmt::format("  {} groups:", label);
    for (int r = 0; r < world_size_; ++r) {
      if (is_first(coord(r))) text += fmt::format(" {{{}}}", fmt::join(members(r), ","));
    }
    text += "\n";
  };
  groups("tp", [&](int r) { return tp_group(r); }, [](GridCoord c) { return c.tp == 0; });
  groups("dp", [&](int r) { return dp_group(r); }, [](GridCoord c) { return c.dp == 0; });
  groups("pp", [&](int r) { return pp_group(r); }, [](GridCoord c) { return c.pp == 0; });
  return text;
}

ParallelGrid::ParallelGrid(Communicator& world, int tp, int pp, int dp)
    : world_(world), layout_(world.size(), tp, pp, dp), coord_(layout_.coord(world.rank())) {
  const int dp_size = layout_.dp_size();
  // A group's color is the coordinates it shares; its key is the coordinate along it.
  tp_ = world.split(coord_.pp * dp_size + coord_.dp, coord_.tp, "tp");
  dp_ = world.split(coord_.pp * tp + coord_.tp, coord_.dp, "dp");
  pp_ = world.split(coord_.dp * tp + coord_.tp, coord_.pp, "pp");
  TESSERA_CHECK(tp_ && tp_->size() == tp && tp_->rank() == coord_.tp, "tp group does not match the layout");
  TESSERA_CHECK(dp_ && dp_->size() == dp_size && dp_->rank() == coord_.dp, "dp group does not match the layout");
  TESSERA_CHECK(pp_ && pp_->size() == pp && pp_->rank() == coord_.pp, "pp group does not match the layout");
}

int ParallelGrid::pp_prev_rank(bool wrap) const {
  const int w = pp_prev_world_rank(wrap);
  return w < 0 ? -1 : layout_.coord(w).pp;
}

int ParallelGrid::pp_next_rank(bool wrap) const {
  const int w = pp_next_world_rank(wrap);
  return w < 0 ? -1 : layout_.coord(w).pp;
}

int ParallelGrid::pp_prev_world_rank(bool wrap) const { return layout_.pp_neighbor(world_rank(), -1, wrap); }
int ParallelGrid::pp_next_world_rank(bool wrap) const { return layout_.pp_neighbor(world_rank(), +1, wrap); }

void ParallelGrid::set_step(int64_t step) {
  world_.set_step(step);
  tp_->set_step(step);
  dp_->set_step(step);
  pp_->set_step(step);
}

}  // namespace tessera
