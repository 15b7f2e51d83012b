// tessera_mpi_tp_tests: tensor-parallel tests under mpirun (the whole world is one tp group).
// Each named fwd/bwd communication pair is checked on its own, then the tiny GPT and MLP
// sharded over the world, with and without sequence parallelism, must give the single-rank
// loss, and their gathered gradients must equal the single-rank gradients (including a
// vocabulary of 65 padded to a multiple of tp).
#include <cmath>

#include "runtime/compute/compute.h"
#include "partitioner/layer_graph.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/data/batch_sampler.h"
#include "runtime/model/model.h"
#include "runtime/model/tensor_parallel.h"
#include "tests/mpi/mpi_test_util.h"

namespace tessera::mpitest {
namespace {

// The expected value of element i of a sum over ranks of per-rank seeded values.
float rank_sum(Communicator& world, uint64_t seed, int64_t i) {
  float expect = 0;
  for (int r = 0; r < world.size(); ++r) expect += f32_value(seed, r, i);
  return expect;
}

Tensor seeded(Shape shape, uint64_t seed, int rank) {
  Tensor t = Tensor::empty(shape);
  fill(t, seed, rank);
  return t;
}

void test_comm_pairs(Harness& h, Communicator& world) {
  const TpGroup tp{&world, world.rank(), world.size()};
  const int n = world.size(), me = world.rank();
  h.run("copy_to_tp", [&] {
    const Tensor x = seeded({5}, 1, me);
    const Tensor y = copy_to_tp_forward(x, tp);
    for (int i = 0; i < 5; ++i) h.check(y.f32()[i] == x.f32()[i], "forward is not the identity at {}", i);
    const Tensor dx = copy_to_tp_backward(seeded({5}, 2, me), tp);
    for (int i = 0; i < 5; ++i) {
      h.check(dx.f32()[i] == rank_sum(world, 2, i), "backward [{}] = {} (expected the sum)", i, dx.f32()[i]);
    }
  });
  h.run("reduce_from_tp", [&] {
    const Tensor y = reduce_from_tp_forward(seeded({7}, 3, me), tp);
    for (int i = 0; i < 7; ++i) {
      h.check(y.f32()[i] == rank_sum(world, 3, i), "forward [{}] = {} (expected the sum)", i, y.f32()[i]);
    }
    const Tensor dy = seeded({7}, 4, me);
    const Tensor d = reduce_from_tp_backward(dy, tp);
    for (int i = 0; i < 7; ++i) h.check(d.f32()[i] == dy.f32()[i], "backward is not the identity at {}", i);
  });
  // Rows of 3 columns; the full tensor has 2 rows per rank. Element (r, c) of the full
  // tensor is value r * 3 + c of the seeded stream of the rank that owns it / contributes.
  h.run("gather_from_sp", [&] {
    const Tensor shard = seeded({2, 3}, 5, me);
    const Tensor full = gather_from_sp_forward(shard, tp);
    h.check(full.dim(0) == 2 * n && full.dim(1) == 3, "forward shape {}", shape_string(full.shape()));
    for (int r = 0; r < 2 * n; ++r) {
      for (int c = 0; c < 3; ++c) {
        const float expect = f32_value(5, r / 2, (r % 2) * 3 + c);
        h.check(full.f32()[r * 3 + c] == expect, "forward row {} col {}", r, c);
      }
    }
    const Tensor dfull = seeded({2 * n, 3}, 6, me);
    const Tensor dshard = gather_from_sp_backward(dfull, tp);
    h.check(dshard.dim(0) == 2, "backward shape {}", shape_string(dshard.shape()));
    for (int i = 0; i < 6; ++i) {
      h.check(dshard.f32()[i] == rank_sum(world, 6, me * 6 + i), "backward [{}]: not the sum of this rank's rows", i);
    }
  });
  h.run("scatter_to_sp", [&] {
    const Tensor partial = seeded({2 * n, 3}, 7, me);
    const Tensor shard = scatter_to_sp_forward(partial, tp);
    h.check(shard.dim(0) == 2, "forward shape {}", shape_string(shard.shape()));
    for (int i = 0; i < 6; ++i) {
      h.check(shard.f32()[i] == rank_sum(world, 7, me * 6 + i), "forward [{}]: not the sum of this rank's rows", i);
    }
    const Tensor dfull = scatter_to_sp_backward(seeded({2, 3}, 8, me), tp);
    for (int r = 0; r < 2 * n; ++r) {
      for (int c = 0; c < 3; ++c) {
        h.check(dfull.f32()[r * 3 + c] == f32_value(8, r / 2, (r % 2) * 3 + c), "backward row {} col {}", r, c);
      }
    }
  });
}

double relative_error(const Tensor& a, const Tensor& b) {
  double diff = 0, ref = 1e-30;
  for (int64_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(double(a.f32()[i]) - double(b.f32()[i])));
    ref = std::max(ref, std::abs(double(b.f32()[i])));
  }
  return diff / ref;
}

// The full gradient of a parameter assembled from every rank's shard.
Tensor gather_global(const Parameter& p, Communicator& world) {
  const int n = world.size();
  Tensor all = Tensor::empty({n * p.grad.numel()});
  world.all_gather(p.grad.view({p.grad.numel()}), all);
  Tensor global = Tensor::empty(p.global_shape);
  for (int r = 0; r < n; ++r) {
    const Tensor shard = all.narrow(r * p.grad.numel(), p.grad.numel()).view(p.grad.shape());
    place_shard(global, shard, p.shard, r, n);
  }
  return global;
}

// Sums the sequence-parallel partial gradients over tp, as the trainer does after backward.
void reduce_sequence_parallel_grads(Model& model, Communicator& world) {
  for (Parameter* p : model.parameters()) {
    if (p->sequence_parallel_grad) world.all_reduce(p->grad, ReduceOp::Sum);
  }
}

void test_model(Harness& h, Communicator& world, const ModelConfig& m, int64_t vocab, bool sp) {
  h.run(m.arch + (sp ? ".sequence_parallel" : "") + ".gradients", [&] {
    const int64_t B = 4;
    const LayerGraph graph = build_layer_graph(m, vocab, B);
    Model single(m, graph, TpGroup::single(), 7);
    Model sharded(m, graph, TpGroup{&world, world.rank(), world.size(), sp}, 7);
    std::vector<int32_t> text(500);
    for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<int32_t>((i * 7919 + i / 3) % vocab);
    const BatchSampler sampler(&text, m.seq_length, 11);
    const Batch batch = sampler.sample(0, 0, B);
    const std::unique_ptr<Compute> compute = make_cpu_compute(Precision::FP32);
    MicrobatchContext ctx;
    ctx.compute = compute.get();
    ctx.tokens = batch.tokens;
    ctx.targets = batch.targets;
    const float loss1 = single.forward(Tensor(), ctx).f32()[0];
    const float loss2 = sharded.forward(Tensor(), ctx).f32()[0];
    h.check(std::abs(loss1 - loss2) <= 1e-6f * std::abs(loss1), "loss {} (tp {}) vs {} (1 rank)", loss2,
            world.size(), loss1);
    single.backward(Tensor(), ctx);
    sharded.backward(Tensor(), ctx);
    reduce_sequence_parallel_grads(sharded, world);
    for (Parameter* p : sharded.parameters()) {
      const Parameter* q = single.find(p->name);
      if (!h.check(q != nullptr, "{} missing from the single-rank model", p->name)) continue;
      Tensor g = gather_global(*p, world);
      // Padded vocabulary rows exist only in the sharded model and must stay zero.
      if (g.numel() != q->grad.numel()) {
        const int64_t real = q->grad.numel();
        for (int64_t i = real; i < g.numel(); ++i) h.check(g.f32()[i] == 0.f, "{}: padding gradient not zero", p->name);
        g = g.narrow(0, q->grad.dim(0));
      }
      const double err = relative_error(g, q->grad);
      h.check(err < 1e-5, "{}: gathered gradient differs from 1 rank by {:.2e}", p->name, err);
    }
  });
}

}  // namespace
}  // namespace tessera::mpitest

int main(int argc, char** argv) {
  using namespace tessera;
  MpiEnvironment env(&argc, &argv);
  int code = 0;
  try {
    auto world = MpiCommunicator::world(20.0);
    mpitest::Harness h(*world, "tp");
    mpitest::test_comm_pairs(h, *world);
    ModelConfig gpt;
    gpt.arch = "gpt";
    gpt.num_layers = 2;
    gpt.hidden_size = 32;
    gpt.num_attention_heads = 4;
    gpt.ffn_hidden_size = 64;
    gpt.seq_length = 16;
    for (bool sp : {false, true}) mpitest::test_model(h, *world, gpt, 65, sp);
    ModelConfig mlp;
    mlp.arch = "mlp";
    mlp.num_layers = 3;
    mlp.hidden_size = 32;
    mlp.seq_length = 16;
    for (bool sp : {false, true}) mpitest::test_model(h, *world, mlp, 65, sp);
    code = h.finish();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] ERROR: %s\n", env.world_rank(), e.what());
    abort_job(1);
  }
  return code;
}
