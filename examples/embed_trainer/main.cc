// embed_trainer: a research trainer that embeds Tessera as a library. It builds a small GPT
// from code, inserts a user-defined layer (ScaleLayer), feeds it a user data source
// (SyntheticTokens), and runs the training loop itself: data parallelism over MPI (every
// rank a full replica, gradients averaged with all_reduce), global-norm clipping and AdamW.
//
//   mpirun -np 2 embed_trainer [--steps N] [--lr X] [--seed S]
//
// Rank 0 prints one line per step: "step 3/30 | loss 2.9876 | lr ... | gnorm ... | scale ...".
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "partitioner/layer_graph.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/config.h"
#include "runtime/error.h"
#include "runtime/model/model.h"
#include "runtime/train/grad_norm.h"
#include "runtime/train/optimizer.h"
#include "scale_layer.h"
#include "synthetic_tokens.h"

namespace {

struct Options {
  int steps = 30;
  double lr = 1e-2;
  uint64_t seed = 1234;
};

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    TESSERA_REQUIRE(i + 1 < argc, "{}: missing value (usage: embed_trainer [--steps N] [--lr X] [--seed S])", arg);
    const std::string value = argv[++i];
    if (arg == "--steps") {
      o.steps = std::stoi(value);
    } else if (arg == "--lr") {
      o.lr = std::stod(value);
    } else if (arg == "--seed") {
      o.seed = std::stoull(value);
    } else {
      TESSERA_REQUIRE(false, "unknown option {} (usage: embed_trainer [--steps N] [--lr X] [--seed S])", arg);
    }
  }
  TESSERA_REQUIRE(o.steps > 0, "--steps = {}: must be positive", o.steps);
  return o;
}

// Sum of squares of every parameter: equal on all ranks while the replicas stay in sync.
double parameter_checksum(const std::vector<tessera::Parameter*>& params) {
  double sq = 0;
  for (const tessera::Parameter* p : params) {
    for (int64_t i = 0; i < p->value.numel(); ++i) sq += static_cast<double>(p->value.f32()[i]) * p->value.f32()[i];
  }
  return sq;
}

int run(const Options& opt) {
  // A duplicate of MPI_COMM_WORLD; every collective gives up after 60 s with a tessera::Error
  // naming the operation and the missing peer.
  auto world = tessera::MpiCommunicator::world(60.0);
  const int rank = world->rank(), ranks = world->size();

  // The model, from code: a ModelConfig and the layer graph the partitioner would plan with.
  tessera::ModelConfig mc;
  mc.arch = "gpt";
  mc.num_layers = 2;
  mc.hidden_size = 32;
  mc.num_attention_heads = 2;
  mc.ffn_hidden_size = 4 * mc.hidden_size;  // the YAML loader resolves 0 to this; here we must
  mc.seq_length = 16;
  const int64_t vocab = 24, micro_batch = 8;
  const tessera::LayerGraph graph = tessera::build_layer_graph(mc, vocab, micro_batch);

  // Built-in layers for one tensor-parallel shard (tp = 1: each rank holds the whole model;
  // every rank initialises the same weights from the seed), plus the user layer after the
  // embedding. Model runs whatever is in layers(), in order; graph() keeps describing only
  // the built-in layers.
  tessera::Model model(mc, graph, tessera::TpGroup::single(), opt.seed);
  model.layers().insert(model.layers().begin() + 1,
                        std::make_unique<ScaleLayer>("scale", mc.hidden_size, opt.seed));
  auto* scale = static_cast<ScaleLayer*>(model.layers()[1].get());
  const std::vector<tessera::Parameter*> params = model.parameters();

  tessera::OptimizerConfig oc;
  oc.lr = opt.lr;
  oc.min_lr = opt.lr / 10;
  oc.warmup_steps = 3;
  oc.weight_decay = 0.1;
  oc.grad_clip = 1.0;
  tessera::AdamW adamw(params, oc);

  SyntheticTokens data(vocab, opt.seed, /*stream=*/static_cast<uint64_t>(rank));
  if (rank == 0) {
    fmt::print("embed_trainer: tessera {} | {} ranks (data parallel) | {} parameters in {} layers\n",
               TESSERA_VERSION, ranks, graph.total_params() + 1, model.layers().size());
  }

  for (int step = 0; step < opt.steps; ++step) {
    world->set_step(step);
    model.zero_grad();
    const TokenBatch batch = data.next_batch(micro_batch, mc.seq_length);
    tessera::MicrobatchContext ctx;
    ctx.microbatch = 0;
    ctx.tokens = batch.tokens;
    ctx.targets = batch.targets;
    ctx.loss_scale = 1.f;  // this rank's mean loss; the all_reduce below averages over ranks
    // The embedding reads ctx.tokens, so the first input is an empty tensor; the head returns
    // the loss [1] and ignores the gradient handed to its backward (it uses ctx.loss_scale).
    tessera::Tensor loss = model.forward(tessera::Tensor(), ctx);
    model.backward(tessera::Tensor(), ctx);

    // Data parallelism: average gradients and the reported loss over the replicas.
    for (tessera::Parameter* p : params) world->all_reduce(p->grad, tessera::ReduceOp::Avg);
    world->all_reduce(loss, tessera::ReduceOp::Avg);

    const double gnorm = tessera::clip_grad_norm(params, oc.grad_clip, tessera::TpGroup::single());
    const double lr = tessera::learning_rate(oc, step, opt.steps);
    adamw.step(lr);
    if (rank == 0) {
      fmt::print("step {}/{} | loss {:.4f} | lr {:.2e} | gnorm {:.3f} | scale {:.4f}\n", step + 1,
                 opt.steps, loss.f32()[0], lr, gnorm, scale->value());
      std::fflush(stdout);
    }
  }

  // Every replica applied the same averaged update, so the weights must agree everywhere.
  tessera::Tensor mine = tessera::Tensor::full({1}, static_cast<float>(parameter_checksum(params)));
  tessera::Tensor all = tessera::Tensor::empty({ranks});
  world->all_gather(mine, all);
  for (int r = 0; r < ranks; ++r) {
    TESSERA_CHECK(all.f32()[r] == all.f32()[0], "replica {} diverged: checksum {} vs {} on rank 0", r,
                  all.f32()[r], all.f32()[0]);
  }
  if (rank == 0) fmt::print("embed_trainer: done, replicas in sync\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Tessera reports every failure as a tessera::Error (InputError for bad input) and never
  // exits; the host program decides. Here, as in the `tessera` CLI: the failing rank prints
  // and ends the whole job, so that the other ranks do not wait for it.
  try {
    tessera::MpiEnvironment env(&argc, &argv);
    try {
      return run(parse_args(argc, argv));
    } catch (const tessera::InputError& e) {
      // Bad input is the same on every rank: rank 0 reports it, every rank exits with 1.
      if (env.world_rank() == 0) std::cerr << "embed_trainer: error: " << e.what() << std::endl;
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "embed_trainer: error on rank " << env.world_rank() << ": " << e.what() << std::endl;
      if (env.world_size() > 1) tessera::abort_job(1);
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "embed_trainer: error: " << e.what() << std::endl;
    return 1;
  }
}
