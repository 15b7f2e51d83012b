// Layout search: the validity rules and their one-line reasons, memory rejections, and a
// ranking that follows the cost model (fast links first, balanced stages, no needless bubble).
#include <catch2/catch.hpp>

#include <algorithm>

#include "partitioner/layout_search.h"
#include "partitioner/plan_report.h"
#include "core/error.h"

using namespace tessera;

namespace {

ModelConfig shakespeare() {
  ModelConfig m;
  m.num_layers = 4;
  m.hidden_size = 128;
  m.num_attention_heads = 4;
  m.ffn_hidden_size = 512;
  m.seq_length = 64;
  return m;
}

// Two nodes of 8 fast devices: NVLink-like inside a node, 10x slower between nodes.
ClusterModel gpu_cluster() {
  ClusterModel c;
  c.name = "test-gpus";
  c.source = "test";
  c.devices_per_node = 8;
  c.device.peak_flops = 100e12;
  c.device.memory_bytes = 80.0 * (1 << 30);
  c.device.memory_bandwidth = 2e12;
  c.device.gemm_efficiency = {{256, 0.1}, {1024, 0.5}, {4096, 0.8}};
  c.intra_node = {2e-6, 300e9};
  c.inter_node = {5e-6, 30e9};
  return c;
}

ClusterModel cpu_cluster() {
  ClusterModel c = gpu_cluster();
  c.name = "test-cpu";
  c.devices_per_node = 2;
  c.nodes = 1;
  c.oversubscribe = true;
  c.device.peak_flops = 100e9;
  c.device.memory_bytes = 0;
  c.node_memory_bytes = 16.0 * (1 << 30);
  c.device.memory_bandwidth = 10e9;
  c.intra_node = c.inter_node = {2e-6, 4e9};
  return c;
}

const Rejection* find_rejection(const SearchResult& r, const std::string& layout) {
  for (const auto& x : r.rejected) {
    if (x.layout == layout) return &x;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("layout_error names the rule", "[partitioner][search]") {
  const ModelConfig m = shakespeare();
  auto err = [&](Layout l, int world, int global) { return layout_error(m, l, world, global).value_or("ok"); };
  CHECK(err({1, 8, 1}, 8, 8) == "tp = 8 > heads 4");
  ModelConfig six = m;
  six.num_attention_heads = 6;
  six.hidden_size = 192;
  CHECK(layout_error(six, {1, 4, 1}, 4, 4).value_or("ok") == "heads 6 not divisible by tp = 4");
  CHECK(err({1, 1, 8}, 8, 8) == "pp x v = 8 stages > 6 layers (num_layers 4 + embedding + head)");
  CHECK(err({8, 1, 1, 1, 1}, 8, 12) == "global batch 12 not divisible by micro batch 1 x dp 8");
  Layout inter{2, 1, 2, 2, 2, ScheduleKind::Interleaved};
  CHECK(err(inter, 4, 12) == "interleaved needs microbatches divisible by pp 2, not 3");
  inter.micro_batch_size = 3;
  CHECK(err(inter, 4, 12) == "ok");
  Layout sp{4, 2, 1, 1, 1};
  sp.sequence_parallel = true;
  CHECK(err(sp, 8, 12) == "ok");
  sp.tp = 1;
  sp.dp = 8;
  CHECK(err(sp, 8, 16) == "sequence parallelism needs tp > 1");
  CHECK(err({2, 2, 1}, 8, 8) == "dp 2 x tp 2 x pp 1 != world 8");
}

TEST_CASE("search rejects invalid layouts with one line each", "[partitioner][search]") {
  const CostModel cost(cpu_cluster());
  SearchOptions o;
  o.world = 8;
  o.global_batch_size = 12;
  o.micro_batch_sizes = {1, 2, 4, 8, 12};
  const SearchResult r = search_layouts(shakespeare(), 65, cost, o);
  REQUIRE_FALSE(r.plans.empty());
  const Rejection* tp8 = find_rejection(r, "tp8");
  REQUIRE(tp8 != nullptr);
  CHECK(tp8->reason == "tp = 8 > heads 4");
  const Rejection* pp8 = find_rejection(r, "tp1 pp8");
  REQUIRE(pp8 != nullptr);
  CHECK(pp8->reason == "pp x v = 8 stages > 6 layers (num_layers 4 + embedding + head)");
  const Rejection* dp8 = find_rejection(r, "dp8 tp1 pp1");
  REQUIRE(dp8 != nullptr);
  CHECK(dp8->reason == "global batch 12 not divisible by dp 8 x any micro batch in [1, 2, 4, 8, 12]");
  const Rejection* inter = find_rejection(r, "dp4 tp1 pp2 interleaved mb1");
  REQUIRE(inter != nullptr);
  CHECK(inter->reason == "interleaved needs microbatches divisible by pp 2, not 3");
  const Rejection* inter2 = find_rejection(r, "dp1 tp4 pp2 interleaved mb4,12");
  REQUIRE(inter2 != nullptr);
  CHECK(inter2->reason == "interleaved needs microbatches divisible by pp 2, not 3, 1");
  const Rejection* v_too_big = find_rejection(r, "dp2 tp1 pp4 interleaved");
  REQUIRE(v_too_big != nullptr);
  CHECK(v_too_big->reason == "pp x v = 8 stages > 6 layers (num_layers 4 + embedding + head)");
  // One line per layout family: no reason repeats for the same layout.
  for (size_t i = 0; i < r.rejected.size(); ++i) {
    for (size_t j = i + 1; j < r.rejected.size(); ++j) CHECK(r.rejected[i].layout != r.rejected[j].layout);
  }
  // Every plan is a valid layout of the world, and the table is sorted by step time.
  for (size_t i = 0; i < r.plans.size(); ++i) {
    const PartitionPlan& p = r.plans[i];
    CHECK(p.dp * p.tp * p.pp == 8);
    CHECK(p.microbatches * p.micro_batch_size * p.dp == 12);
    if (i > 0) CHECK(r.plans[i - 1].step_time_s <= p.step_time_s);
  }
  const std::string text = format_rejections(r);
  CHECK(text.find("tp8") != std::string::npos);
}

TEST_CASE("search rejects layouts over the memory cap with the bytes they need", "[partitioner][search]") {
  const CostModel cost(gpu_cluster());
  SearchOptions o;
  o.world = 1;
  o.global_batch_size = 8;
  o.micro_batch_sizes = {8};
  o.recompute = {Recompute::None};
  o.memory_cap = 1 << 20;  // 1 MiB: nothing fits
  const SearchResult r = search_layouts(shakespeare(), 65, cost, o);
  CHECK(r.plans.empty());
  REQUIRE(r.rejected.size() == 1);
  CHECK(r.rejected[0].layout == "dp1 tp1 pp1 mb8");
  // What the single rank holds, exactly as evaluate_layout sizes it without a cap.
  SearchOptions uncapped = o;
  uncapped.memory_cap = 1e18;
  const Evaluation ev = evaluate_layout(shakespeare(), 65, cost, {1, 1, 1, 1, 8}, uncapped);
  REQUIRE(ev.plan);
  const double needs = static_cast<double>(ev.plan->peak_memory());
  CHECK(r.rejected[0].needs_bytes == needs);
  CHECK(r.rejected[0].reason == "needs " + format_bytes(needs) + " > 1.0 MiB cap");
}

TEST_CASE("search ranks layouts sensibly", "[partitioner][search]") {
  const CostModel cost(gpu_cluster());
  ModelConfig big;  // ~1.3B-parameter GPT
  big.num_layers = 24;
  big.hidden_size = 2048;
  big.num_attention_heads = 16;
  big.ffn_hidden_size = 8192;
  big.seq_length = 1024;
  SearchOptions o;
  o.world = 16;
  o.global_batch_size = 64;
  o.micro_batch_sizes = {1, 2, 4};
  o.recompute = {Recompute::None, Recompute::Full};
  o.sequence_parallel = {false};
  o.precision = "bf16";
  const SearchResult r = search_layouts(big, 50304, cost, o);
  REQUIRE(r.plans.size() > 10);
  const PartitionPlan& best = r.plans.front();
  // tp across the slow inter-node link is never the best choice.
  CHECK(best.tp <= 8);
  auto fastest = [&](auto pred) {
    for (const auto& p : r.plans) {
      if (pred(p)) return p.step_time_s;
    }
    return 1e30;
  };
  CHECK(fastest([](const PartitionPlan& p) { return p.tp == 8; }) <
        fastest([](const PartitionPlan& p) { return p.tp == 16; }));
  // GPipe and 1F1B have the same bubble; 1F1B holds fewer microbatches, so with equal time it
  // ranks first.
  for (size_t i = 0; i < r.plans.size(); ++i) {
    const PartitionPlan& a = r.plans[i];
    if (a.schedule != "gpipe" || a.pp == 1) continue;
    for (const PartitionPlan& b : r.plans) {
      if (b.schedule == "1f1b" && b.dp == a.dp && b.tp == a.tp && b.pp == a.pp &&
          b.micro_batch_size == a.micro_batch_size && b.recompute == a.recompute && b.zero_stage == a.zero_stage) {
        CHECK(b.peak_memory() <= a.peak_memory());
        CHECK(b.step_time_s == Approx(a.step_time_s).epsilon(0.02));
      }
    }
  }
  // Full recompute costs about a forward more than the same layout without it, and keeps less
  // in flight (its total can still be higher: the rerun chunk is alive during the backward).
  int compared = 0;
  for (const PartitionPlan& a : r.plans) {
    if (a.recompute != "full") continue;
    for (const PartitionPlan& b : r.plans) {
      if (b.recompute == "none" && b.label() == a.label() && b.schedule == a.schedule &&
          b.micro_batch_size == a.micro_batch_size && b.zero_stage == a.zero_stage) {
        CHECK(a.step_time_s > b.step_time_s);
        if (b.memory[0].in_flight > 1 && a.partition == b.partition && b.memory[0].activations > 0) {
          CHECK(a.memory[0].activations < b.memory[0].activations);
          ++compared;
        }
      }
    }
  }
  CHECK(compared > 0);
  // MFU stays physical.
  for (const auto& p : r.plans) {
    CHECK(p.mfu > 0);
    CHECK(p.mfu < 1);
  }
}

TEST_CASE("balanced stages beat the even split", "[partitioner][search]") {
  const CostModel cost(gpu_cluster());
  ModelConfig m = shakespeare();
  m.num_layers = 6;  // 8 graph layers; a large vocabulary makes the head heavy
  SearchOptions o;
  o.world = 4;
  o.global_batch_size = 16;
  const Layout l{1, 1, 4, 1, 1, ScheduleKind::OneFOneB};
  const Evaluation balanced = evaluate_layout(m, 50304, cost, l, o);
  const Evaluation even = evaluate_layout(m, 50304, cost, l, o, {2, 2, 2, 2});
  REQUIRE(balanced.plan);
  REQUIRE(even.plan);
  CHECK(balanced.plan->partition != std::vector<int>{2, 2, 2, 2});
  CHECK(balanced.plan->partition.back() < 2);  // the head gets a stage (nearly) to itself
  CHECK(balanced.plan->step_time_s < even.plan->step_time_s);
  CHECK_THROWS_WITH(evaluate_layout(m, 65, cost, l, o, {2, 2, 2}),
                    "partition must have pp x v = 4 entries summing to 8 layers");
}

TEST_CASE("the pipeline bubble follows the schedule", "[partitioner][search]") {
  const CostModel cost(gpu_cluster());
  ModelConfig m = shakespeare();
  m.num_layers = 14;  // 16 graph layers
  SearchOptions o;
  o.world = 4;
  o.global_batch_size = 8;
  const Evaluation one = evaluate_layout(m, 65, cost, {1, 1, 4, 1, 1, ScheduleKind::OneFOneB}, o);
  const Evaluation inter = evaluate_layout(m, 65, cost, {1, 1, 4, 2, 1, ScheduleKind::Interleaved}, o);
  REQUIRE(one.plan);
  REQUIRE(inter.plan);
  // The bubble is the idle fraction of the simulated pipeline makespan on the busiest rank:
  // that rank runs m microbatches of its stage time, so bubble = 1 - m max t_s / makespan.
  // (The value itself depends on the stage costs and the messages' latency on the critical
  // path; the theory for uniform stages, (p - 1) / (m + p - 1), is checked exactly in
  // test_schedule_sim.cc. The old check here, 3/11 give or take 30 %, held for almost any
  // bubble and is gone.)
  const PartitionPlan& plan = *one.plan;
  REQUIRE(plan.stage_time_s.size() == 4);
  const double slowest = *std::max_element(plan.stage_time_s.begin(), plan.stage_time_s.end());
  CHECK(plan.bubble == Approx(1.0 - plan.microbatches * slowest / plan.breakdown.pipeline_s).epsilon(1e-9));
  CHECK(inter.plan->bubble < one.plan->bubble);
}
