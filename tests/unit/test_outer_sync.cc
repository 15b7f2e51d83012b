// Local SGD / DiLoCo pieces that need no MPI: the outer Nesterov step (the hand-computed
// example of tests/mpi/outer_sync_tests.cc for one element), bf16 rounding, the fragments of
// the layers, the planner's communication cost, and the config rules (one exact line each).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/error.h"
#include "launcher/config_loader.h"
#include "partitioner/layout_search.h"
#include "partitioner/outer_sync_cost.h"
#include "runtime/bf16.h"
#include "runtime/train/outer_optimizer.h"
#include "runtime/train/outer_sync.h"

using namespace tessera;

TEST_CASE("outer Nesterov step: the hand-computed DiLoCo example", "[outer_sync]") {
  // Outer gradients 2, 1, -1 with lr 0.7, momentum 0.9 (derivation in outer_sync_tests.cc).
  float anchor = 0, buf = 0;
  const float g[3] = {2, 1, -1}, want[3] = {-2.66f, -5.124f, -5.3816f};
  for (int k = 0; k < 3; ++k) {
    outer_sgd_update(&anchor, &g[k], &buf, 1, {0.7f, 0.9f, true});
    CHECK(anchor == Approx(want[k]).epsilon(1e-6));
  }
  // Without Nesterov the step is the buffer: 0.7 * 2, then 0.7 * (1.8 + 1).
  anchor = buf = 0;
  outer_sgd_update(&anchor, &g[0], &buf, 1, {0.7f, 0.9f, false});
  outer_sgd_update(&anchor, &g[1], &buf, 1, {0.7f, 0.9f, false});
  CHECK(anchor == Approx(-0.7 * 2 - 0.7 * 2.8).epsilon(1e-6));
  // lr 1 without momentum: the anchor becomes the replicas' mean (local SGD); no buffer needed.
  anchor = 5;
  const float d = 1.5f;
  outer_sgd_update(&anchor, &d, nullptr, 1, {1.f, 0.f, false});
  CHECK(anchor == 3.5f);
}

TEST_CASE("bf16 rounding is round-to-nearest-even", "[outer_sync]") {
  CHECK(bf16_to_f32(f32_to_bf16(1.f)) == 1.f);
  CHECK(bf16_to_f32(f32_to_bf16(-2.5f)) == -2.5f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
  CHECK(bf16_to_f32(f32_to_bf16(1.f + 1.f / 256)) == 1.f);
  CHECK(bf16_to_f32(f32_to_bf16(1.f + 3.f / 256)) == 1.f + 4.f / 256);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

TEST_CASE("fragments are runs of whole blocks", "[outer_sync]") {
  // Graph layers: embedding 0, blocks 1..4, head 5; two fragments of two blocks each.
  CHECK(outer_fragment_of_layers({0, 1, 2, 3, 4, 5}, 4, 2) == std::vector<int>{0, 0, 0, 1, 1, 1});
  CHECK(outer_fragment_of_layers({3, 4, 5}, 4, 4) == std::vector<int>{2, 3, 3});  // a later pipeline stage
  CHECK(outer_fragment_of_layers({0, 1, 2, 3}, 2, 1) == std::vector<int>{0, 0, 0, 0});
}

TEST_CASE("outer sync cost: H times fewer bytes, hidden by the delay", "[outer_sync][planner]") {
  const LinkModel link{1e-3, 1e6};  // 1 ms, 1 MB/s
  const int64_t params = 250000;    // 1 MB of fp32
  OuterSyncCostOptions o;
  o.sync_interval = 20;
  const double full = link.all_reduce_seconds(1e6, 2);
  DpCommCost c = outer_sync_cost(link, params, 2, o, 0.1);
  CHECK(c.comm_s == Approx(full / 20));
  CHECK(c.exposed_s == Approx(full / 20));  // blocking: all of it is waited for
  // Streaming: 4 fragments, each behind 2 steps of 0.1 s; a fragment takes ~0.25 s.
  o.fragments = 4;
  o.delay = 2;
  const double fragment = link.all_reduce_seconds(0.25e6, 2);
  c = outer_sync_cost(link, params, 2, o, 0.1);
  CHECK(c.comm_s == Approx(4 * fragment / 20));
  CHECK(c.exposed_s == Approx(4 * (fragment - 0.2) / 20));
  // Long steps hide it all; bf16 halves the bytes; one replica sends nothing.
  CHECK(outer_sync_cost(link, params, 2, o, 1.0).exposed_s == 0.0);
  o.bytes_per_param = 2;
  CHECK(outer_sync_cost(link, params, 2, o, 1.0).comm_s == Approx(4 * link.all_reduce_seconds(0.125e6, 2) / 20));
  CHECK(outer_sync_cost(link, params, 1, o, 1.0).comm_s == 0.0);
  // A link slower than the steps shows in every step, however the syncs are staggered.
  o.sync_interval = 4;
  o.bytes_per_param = 4;
  c = outer_sync_cost(link, params, 2, o, 0.01);
  CHECK(c.exposed_s == Approx(c.comm_s - 0.01));
}

TEST_CASE("the layout search prices a DiLoCo config's dp traffic once per H steps", "[outer_sync][planner]") {
  // Two ranks joined by a slow link (1 MB/s): synchronous DP waits on its all-reduce every step.
  ClusterModel cluster;
  cluster.name = "slow";
  cluster.source = "test.yaml";
  cluster.devices_per_node = 1;
  cluster.device.peak_flops = 1e12;
  cluster.device.memory_bytes = 40.0 * (1 << 30);
  cluster.device.memory_bandwidth = 1e11;
  cluster.intra_node = cluster.inter_node = {1e-3, 1e6};
  const std::string model = "model: {num_layers: 2, hidden_size: 64, num_attention_heads: 4, seq_length: 32}\n"
                            "train: {micro_batch_size: 4, global_batch_size: 8}\n";
  const Config sync = parse_config_string(model, "sync.yaml", {});
  const Config diloco = parse_config_string(
      model + "parallel: {data_parallel_sync: diloco, sync_interval: 20}\n", "diloco.yaml", {});
  const CostModel cost(cluster);
  const PartitionPlan a = plan_config_layout(sync, 65, 2, cost, {});
  const PartitionPlan b = plan_config_layout(diloco, 65, 2, cost, {});
  REQUIRE(a.dp == 2);
  CHECK(b.breakdown.dp_comm_s == Approx(a.breakdown.dp_comm_s / 20));
  CHECK(b.breakdown.dp_exposed_s < a.breakdown.dp_exposed_s / 10);
  CHECK(b.step_time_s < a.step_time_s);
}

namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_config_string(yaml, "bad.yaml", {});
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("outer sync config rules name the key and the rule", "[outer_sync][config]") {
  CHECK(error_of("parallel: {data_parallel_sync: diloco, sync_interval: 0}\n") ==
        "bad.yaml: parallel.sync_interval = 0: must be a positive integer");
  CHECK(error_of("parallel: {data_parallel_sync: gossip}\n") ==
        "bad.yaml: parallel.data_parallel_sync = 'gossip': must be one of allreduce, local_sgd, diloco");
  CHECK(error_of("parallel: {sync_interval: 20}\n") ==
        "bad.yaml: parallel.sync_interval = 20: needs parallel.data_parallel_sync = local_sgd or diloco (allreduce "
        "syncs every step)");
  CHECK(error_of("parallel: {outer_lr: 0.5}\n") ==
        "bad.yaml: parallel.outer_lr = 0.5: only applies with parallel.data_parallel_sync = diloco, not allreduce");
  CHECK(error_of("parallel: {data_parallel_sync: local_sgd, sync_interval: 4, outer_momentum: 0.5}\n") ==
        "bad.yaml: parallel.outer_momentum = 0.5: only applies with parallel.data_parallel_sync = diloco, not "
        "local_sgd (local SGD averages: outer lr 1, no momentum)");
  CHECK(error_of("parallel: {data_parallel_sync: diloco, outer_momentum: 1}\n") ==
        "bad.yaml: parallel.outer_momentum = 1: must be in [0, 1)");
  CHECK(error_of("model: {num_layers: 4}\nparallel: {data_parallel_sync: diloco, sync_interval: 6, "
                 "outer_fragments: 3}\n") ==
        "bad.yaml: parallel.outer_fragments = 3: must divide model.num_layers = 4 (each fragment is a run of whole "
        "blocks)");
  CHECK(error_of("parallel: {data_parallel_sync: diloco, sync_interval: 4, outer_delay: 4}\n") ==
        "bad.yaml: parallel.outer_delay = 4: must be less than parallel.sync_interval = 4 (a fragment's reduction "
        "must be applied before its next one starts)");
  CHECK(error_of("parallel: {data_parallel_sync: diloco, sync_interval: 4, zero_stage: 1, outer_dtype: bf16}\n") ==
        "bad.yaml: parallel.outer_dtype = 'bf16': must be fp32 with parallel.zero_stage = 1 (the sharded outer state "
        "averages the replicas' fp32 parameters, not their deltas)");
  CHECK(error_of("parallel: {data_parallel_sync: diloco, sync_interval: 4, zero_stage: 1, outer_delay: 1}\n") ==
        "bad.yaml: parallel.outer_delay = 1: must be 0 with parallel.zero_stage = 1 (the sharded outer step is a "
        "blocking reduce-scatter and all-gather)");
  CHECK(error_of("parallel: {data_parallel_sync: diloco, sync_interval: 4}\nprune: {target_sparsity: 0.5, "
                 "end_step: 10}\n") ==
        "bad.yaml: prune.target_sparsity = 0.5: must be 0 with parallel.data_parallel_sync = diloco (replicas would "
        "choose different masks)");
  CHECK(error_of("parallel: {data_parallel_sync: diloco, sync_interval: 20, outer_fragments: 2, outer_delay: 5, "
                 "outer_dtype: bf16}\n") == "no error");
}
