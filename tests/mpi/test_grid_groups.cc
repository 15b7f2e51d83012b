// ParallelGrid under MPI: for every (tp, pp) that divides the world, each group's members
// (gathered world ranks, in group order) match GridLayout, and pipeline neighbours talk.
#include <utility>
#include <vector>

#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/parallel_grid.h"
#include "tests/mpi/mpi_test_util.h"

namespace tessera::mpitest {
namespace {

std::vector<int> gather_world_ranks(Communicator& group, int world_rank) {
  Tensor in = Tensor::empty({1}, DType::I32);
  in.i32()[0] = world_rank;
  Tensor out = Tensor::empty({group.size()}, DType::I32);
  group.all_gather(in, out);
  return std::vector<int>(out.i32(), out.i32() + group.size());
}

void check_grid(Harness& h, MpiCommunicator& world, int tp, int pp, int dp) {
  ParallelGrid grid(world, tp, pp, dp);
  const GridLayout& layout = grid.layout();
  const int me = world.rank();
  const GridCoord c = layout.coord(me);
  h.check(grid.tp_rank() == c.tp && grid.dp_rank() == c.dp && grid.pp_rank() == c.pp, "coordinates");
  h.check(me == grid.pp_rank() * grid.dp_size() * grid.tp_size() + grid.dp_rank() * grid.tp_size() + grid.tp_rank(),
          "Megatron order");
  h.check(grid.tp().name() == "tp" && grid.dp().name() == "dp" && grid.pp().name() == "pp", "group names");
  h.check(gather_world_ranks(grid.tp(), me) == layout.tp_group(me), "tp group members");
  h.check(gather_world_ranks(grid.dp(), me) == layout.dp_group(me), "dp group members");
  h.check(gather_world_ranks(grid.pp(), me) == layout.pp_group(me), "pp group members");

  // Activations forward along the pipeline, stage by stage, and around the ring with wrap.
  grid.set_step(3);
  Tensor out = Tensor::empty({2}, DType::I32);
  out.i32()[0] = me;
  out.i32()[1] = grid.pp_rank();
  Tensor in = Tensor::zeros({2}, DType::I32);
  std::unique_ptr<CommRequest> send, recv;
  if (!grid.is_first_stage()) recv = grid.pp().recv(in, grid.pp_prev_rank(), 11);
  if (!grid.is_last_stage()) send = grid.pp().send(out, grid.pp_next_rank(), 11);
  if (recv) {
    recv->wait();
    h.check(in.i32()[0] == grid.pp_prev_world_rank() && in.i32()[1] == grid.pp_rank() - 1, "pipeline recv");
  }
  if (send) send->wait();
  h.check(grid.is_first_stage() == (grid.pp_prev_rank() == -1), "first stage has no previous rank");
  h.check(grid.is_last_stage() == (grid.pp_next_rank() == -1), "last stage has no next rank");
  recv = grid.pp().recv(in, grid.pp_prev_rank(true), 12);
  send = grid.pp().send(out, grid.pp_next_rank(true), 12);
  recv->wait();
  send->wait();
  h.check(in.i32()[0] == grid.pp_prev_world_rank(true), "pipeline ring recv");

  // Gradients averaged over dp: the mean of the world ranks in my dp group.
  Tensor g = Tensor::full({3}, static_cast<float>(me));
  grid.dp().all_reduce(g, ReduceOp::Avg);
  float mean = 0;
  for (int r : layout.dp_group(me)) mean += static_cast<float>(r);
  mean /= static_cast<float>(grid.dp_size());
  h.check(g.f32()[2] == mean, "dp average {} expected {}", g.f32()[2], mean);
}

}  // namespace

void run_grid_suite(Harness& h, MpiCommunicator& world) {
  const int n = world.size();
  for (int tp = 1; tp <= n; ++tp) {
    for (int pp = 1; pp <= n; ++pp) {
      if (n % (tp * pp) != 0) continue;
      h.run(fmt::format("tp{}_pp{}", tp, pp), [&] { check_grid(h, world, tp, pp, 0); });
    }
  }
  h.run("explicit_dp", [&] { check_grid(h, world, 1, 1, n); });
  h.run("invalid", [&] {
    // Checked on every rank before any group is made, so no rank waits for another.
    h.expect_error("must divide the world size", [&] { ParallelGrid grid(world, n + 1, 1); });
    h.expect_error("must equal the world size", [&] { ParallelGrid grid(world, 1, 1, n + 1); });
  });
}

}  // namespace tessera::mpitest
