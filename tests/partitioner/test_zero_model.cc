// ZeRO stages 2 and 3 in the planner: traffic per stage, the unit-by-unit overlap of gathers and
// reduce-scatters on one serial link, the memory per stage of a tiny GPT against hand counts,
// and the layout search choosing stage 3 where nothing else fits the cap.
#include <catch2/catch.hpp>

#include "partitioner/layer_graph.h"
#include "partitioner/layout_search.h"
#include "partitioner/memory_model.h"
#include "partitioner/plan_report.h"
#include "partitioner/zero_model.h"
#include "tests/unit/tiny_models.h"

using namespace tessera;

TEST_CASE("dp traffic per stage: ZeRO-3 sends 1.5x ZeRO-1's, ZeRO-2/3 scale with microbatches", "[partitioner][zero]") {
  // P = 1000 fp32 parameters over 4 ranks: a ring reduce-scatter or all-gather of 4000 bytes
  // sends 3/4 of them.
  CHECK(dp_traffic_bytes(1000, 4, 0, 1, false).all_reduce == 6000);
  const DpTraffic z1 = dp_traffic_bytes(1000, 4, 1, 1, false);
  CHECK(z1.reduce_scatter == 3000);
  CHECK(z1.all_gather == 3000);
  CHECK(z1.total() == 6000);  // the same bytes as the all-reduce, split in two
  CHECK(dp_traffic_bytes(1000, 4, 2, 1, false).total() == 6000);
  const DpTraffic z3 = dp_traffic_bytes(1000, 4, 3, 1, false);
  CHECK(z3.reduce_scatter == 3000);
  CHECK(z3.all_gather == 6000);  // before forward and again before backward
  CHECK(z3.total() == 1.5 * z1.total());
  // Three microbatches: stage 2 reduce-scatters each one's gradients, stage 3 also gathers
  // each unit twice per microbatch; stage 1 still reduces once per step.
  CHECK(dp_traffic_bytes(1000, 4, 1, 3, false).total() == 6000);
  CHECK(dp_traffic_bytes(1000, 4, 2, 3, false).total() == 3 * 3000 + 3000);
  CHECK(dp_traffic_bytes(1000, 4, 3, 3, false).total() == 3 * 3000 + 3 * 6000);
  // Mixed precision gathers bf16 units; gradients stay fp32.
  const DpTraffic z3_bf16 = dp_traffic_bytes(1000, 4, 3, 1, true);
  CHECK(z3_bf16.all_gather == 3000);
  CHECK(z3_bf16.reduce_scatter == 3000);
  CHECK(dp_traffic_bytes(1000, 1, 3, 1, false).total() == 0);
}

TEST_CASE("dp traffic with bf16 gradient reduction and with full recompute", "[partitioner][zero]") {
  // bf16 gradients: half the reduce-scatter / all-reduce bytes; the parameter gathers unchanged.
  CHECK(dp_traffic_bytes(1000, 4, 0, 1, false, true).all_reduce == 3000);
  const DpTraffic z1 = dp_traffic_bytes(1000, 4, 1, 1, false, true);
  CHECK(z1.reduce_scatter == 1500);
  CHECK(z1.all_gather == 3000);
  CHECK(dp_traffic_bytes(1000, 4, 3, 2, true, true).reduce_scatter == 2 * 1500);
  // Full recompute: a third gather per microbatch at stage 3 only.
  CHECK(dp_traffic_bytes(1000, 4, 3, 2, false, false, true).all_gather == 3 * 2 * 3000);
  CHECK(dp_traffic_bytes(1000, 4, 2, 2, false, false, true).all_gather == 3000);
}

TEST_CASE("overlap_units: prefetch hides gathers behind compute, one serial link", "[partitioner][zero]") {
  const std::vector<double> compute = {1, 1, 1}, none = {0, 0, 0};
  SECTION("prefetch 1: only the first gather is exposed") {
    const UnitOverlap o = overlap_units(compute, {0.5, 0.5, 0.5}, none, 1);
    CHECK(o.wait == std::vector<double>{0.5, 0, 0});
    CHECK(o.tail == 0);
    CHECK(o.link_busy == 1.5);
    CHECK(o.hidden_share() == Approx(2.0 / 3));
  }
  SECTION("prefetch 0 gathers on demand: every gather is exposed") {
    const UnitOverlap o = overlap_units(compute, {0.5, 0.5, 0.5}, none, 0);
    CHECK(o.wait == std::vector<double>{0.5, 0.5, 0.5});
    CHECK(o.hidden_share() == 0);
  }
  SECTION("a link slower than compute: more prefetch does not help") {
    // Gathers of 2 behind computes of 1: unit i starts at 2 (i + 1) whatever the prefetch.
    for (int k : {1, 2}) {
      const UnitOverlap o = overlap_units(compute, {2, 2, 2}, none, k);
      CHECK(o.wait == std::vector<double>{2, 1, 1});
    }
  }
  SECTION("reduce-scatters left at the end are the tail") {
    const UnitOverlap o = overlap_units({1, 1}, {0, 0}, {0.5, 2}, 1);
    CHECK(o.wait == std::vector<double>{0, 0});
    CHECK(o.tail == 2);  // the second scatter starts at 2 and ends at 4
  }
  SECTION("a gather queues behind an earlier reduce-scatter (FIFO link)") {
    // Unit 0's scatter (3) occupies the link from 1 to 4; unit 2's gather, issued when unit 1
    // starts at 1, runs from 4 to 5, so unit 2 waits from 2 to 5.
    const UnitOverlap o = overlap_units(compute, {0, 0, 1}, {3, 0, 0}, 1);
    CHECK(o.wait == std::vector<double>{0, 0, 3});
  }
}

namespace {

std::vector<ShardedLayer> tiny_layers() {
  const ModelConfig m = tiny_gpt_config();
  return shard_graph(build_layer_graph(m, 65, 4), m, 4, {});
}

// The tiny GPT of test_memory_model.cc: 21824 parameters, the largest unit a block of 8544.
constexpr int64_t kParams = 21824, kBlock = 8544, kSlice = kParams / 4;

}  // namespace

TEST_CASE("memory per ZeRO stage of a tiny GPT at dp 4", "[partitioner][zero][memory]") {
  const auto layers = tiny_layers();
  MemoryOptions o;
  o.dp = 4;
  o.microbatches = 2;
  SECTION("stage 2: gradient slice plus the unit computing, the unit reducing and its received block") {
    o.zero_stage = 2;
    const MemoryBreakdown m = stage_memory(layers, {{0, 4}}, 0, o);
    CHECK(m.params == 4 * kParams);
    CHECK(m.grads == 4 * (kSlice + 2 * kBlock + kBlock / 4));
    CHECK(m.optimizer == 8 * kSlice);
    CHECK(m.gathered == 0);
    CHECK(m.comm_buffers == 0);
  }
  SECTION("stage 3: parameter shard plus prefetch + 1 gathered units") {
    o.zero_stage = 3;
    MemoryBreakdown m = stage_memory(layers, {{0, 4}}, 0, o);
    CHECK(m.params == 4 * kSlice);
    CHECK(m.grads == 4 * (kSlice + 2 * kBlock + kBlock / 4));
    CHECK(m.optimizer == 8 * kSlice);
    CHECK(m.gathered == 4 * 2 * kBlock);
    o.zero_prefetch = 0;
    CHECK(stage_memory(layers, {{0, 4}}, 0, o).gathered == 4 * kBlock);
    o.zero_prefetch = 10;  // never more than the rank's own parameters
    CHECK(stage_memory(layers, {{0, 4}}, 0, o).gathered == 4 * kParams);
    o.zero_prefetch = 1;
    o.mixed_precision = true;  // fp32 master shard; the computing unit widened to fp32 with bf16
    m = stage_memory(layers, {{0, 4}}, 0, o);  // GEMM copies, the prefetched one in flight in bf16
    CHECK(m.params == 4 * kSlice);
    CHECK(m.optimizer == 8 * kSlice);
    CHECK(m.gathered == (4 + 2) * kBlock + 2 * kBlock);
  }
  SECTION("pp 2: each stage shards and gathers its own layers only") {
    o.zero_stage = 3;
    o.pp = 2;
    const MemoryBreakdown m1 = stage_memory(layers, {{2, 4}}, 1, o);
    const int64_t stage1 = kBlock + 2144;  // a block and the head
    CHECK(m1.params == 4 * ((stage1 + 3) / 4));
    CHECK(m1.gathered == 4 * stage1);  // two units: the block and the head
  }
  SECTION("dp 1 shards nothing whatever the stage") {
    o.dp = 1;
    o.zero_stage = 3;
    o.microbatches = 1;
    MemoryOptions plain = o;
    plain.zero_stage = 0;
    CHECK(stage_memory(layers, {{0, 4}}, 0, o).total() == stage_memory(layers, {{0, 4}}, 0, plain).total());
  }
}

TEST_CASE("a head tied to the embedding: shared on one stage, a copy on another", "[partitioner][zero][memory]") {
  auto layers = tiny_layers();
  constexpr int64_t kHead = 2144, kTable = 10000;  // a table larger than a block
  layers.back().tied_params = kTable;
  MemoryOptions o;
  o.dp = 4;
  o.microbatches = 2;
  SECTION("one stage, ZeRO-2/3: the table's gradient alive over the backward, gathered with the head") {
    o.zero_stage = 2;
    CHECK(stage_memory(layers, {{0, 4}}, 0, o).params == 4 * kParams);
    CHECK(stage_memory(layers, {{0, 4}}, 0, o).grads == 4 * (kSlice + 2 * kBlock + kBlock / 4 + kTable));
    o.zero_stage = 3;
    o.zero_prefetch = 0;
    CHECK(stage_memory(layers, {{0, 4}}, 0, o).gathered == 4 * (kHead + kTable));
    o.zero_stage = 0;  // replicated: nothing beyond the embedding's own table
    auto untied = tiny_layers();
    CHECK(stage_memory(layers, {{0, 4}}, 0, o).total() == stage_memory(untied, {{0, 4}}, 0, o).total());
  }
  SECTION("pp 2: the last stage holds a copy, with its gradient and moments") {
    o.pp = 2;
    const int64_t stage1 = kBlock + kHead + kTable;
    o.zero_stage = 0;
    const MemoryBreakdown m = stage_memory(layers, {{2, 4}}, 1, o);
    CHECK(m.params == 4 * stage1);
    CHECK(m.grads == 4 * stage1);
    CHECK(m.optimizer == 8 * stage1);
    o.zero_stage = 3;
    CHECK(stage_memory(layers, {{2, 4}}, 1, o).params == 4 * ((stage1 + 3) / 4));
  }
  SECTION("the range model used by the search agrees") {
    for (int stage : {0, 2, 3}) {
      o.zero_stage = stage;
      o.pp = 1;
      CHECK(RangeMemory(layers, o).total(0, 0, 4) == stage_memory(layers, {{0, 4}}, 0, o).total());
      o.pp = 2;
      CHECK(RangeMemory(layers, o).total(1, 2, 4) == stage_memory(layers, {{2, 4}}, 1, o).total());
    }
  }
}

TEST_CASE("model states per rank approach the ZeRO paper's 16 Psi / N when parameters dominate", "[partitioner][zero][memory]") {
  // 48 blocks: the largest unit is ~2% of the parameters.
  ModelConfig m = tiny_gpt_config();
  m.num_layers = 48;
  m.hidden_size = 256;
  m.num_attention_heads = 4;
  m.ffn_hidden_size = 1024;
  const auto layers = shard_graph(build_layer_graph(m, 65, 1), m, 1, {2});
  const int last = static_cast<int>(layers.size());
  MemoryOptions o;
  o.dp = 8;
  o.mixed_precision = true;
  int64_t params = 0;
  for (const auto& l : layers) params += l.params;
  std::vector<int64_t> states;
  for (int zero : {0, 1, 2, 3}) {
    o.zero_stage = zero;
    const MemoryBreakdown b = stage_memory(layers, {{0, last}}, 0, o);
    states.push_back(b.params + b.grads + b.optimizer + b.gathered);
  }
  // Each stage holds less than the one before.
  CHECK(states[0] > states[1]);
  CHECK(states[1] > states[2]);
  CHECK(states[2] > states[3]);
  // Stage 0: (4 + 2) + 4 + 8 bytes per parameter: the runtime's fp32 masters with bf16 GEMM
  // copies, fp32 gradients (the paper: 2 + 2 + 12).
  CHECK(states[0] == 18 * params);
  // Stage 3: (4 + 4 + 8) / N plus the gathered units and the two unit gradients, within 25%
  // of the sharded states alone at this size.
  const double sharded = 16.0 * params / 8;
  CHECK(states[3] > sharded);
  CHECK(states[3] < 1.25 * sharded);
}

TEST_CASE("the layout search takes ZeRO-3 where only it fits, and says why the others do not", "[partitioner][zero][search]") {
  ClusterModel c;
  c.name = "test-gpus";
  c.source = "test";
  c.devices_per_node = 8;
  c.device.peak_flops = 100e12;
  c.device.memory_bandwidth = 2e12;
  c.intra_node = {2e-6, 300e9};
  c.inter_node = {5e-6, 30e9};
  ModelConfig m = tiny_gpt_config(64);
  m.num_layers = 8;
  m.hidden_size = 256;
  m.num_attention_heads = 4;
  m.ffn_hidden_size = 1024;
  const CostModel cost(c);
  SearchOptions o;
  o.world = 4;
  o.global_batch_size = 4;
  o.micro_batch_sizes = {1};
  o.schedules = {ScheduleKind::OneFOneB};
  o.recompute = {Recompute::None};
  o.sequence_parallel = {false};
  o.zero_stages = {0, 1, 2, 3};
  o.memory_cap = 1e18;
  // Uncapped: every stage at dp 4 is a plan, with the traffic of its stage.
  const SearchResult all = search_layouts(m, 65, cost, o);
  const PartitionPlan* by_stage[4] = {};
  for (const PartitionPlan& p : all.plans) {
    if (p.dp == 4) by_stage[p.zero_stage] = &p;
  }
  for (const PartitionPlan* p : by_stage) REQUIRE(p != nullptr);
  CHECK(by_stage[3]->breakdown.dp_bytes == Approx(1.5 * by_stage[1]->breakdown.dp_bytes));
  // ZeRO-3's stalls are dp time, not tp time (tp is 1), and prefetch hides part of the gathers.
  CHECK(by_stage[3]->breakdown.tp_comm_s == Approx(0).margin(1e-12));
  CHECK(by_stage[3]->breakdown.dp_exposed_s > 0);
  CHECK(by_stage[3]->breakdown.dp_exposed_s < by_stage[3]->breakdown.dp_comm_s);
  // ZeRO-1 exposes all of its reduce-scatter and all-gather.
  CHECK(by_stage[1]->breakdown.dp_exposed_s == Approx(by_stage[1]->breakdown.dp_comm_s));
  CHECK(by_stage[3]->peak_memory() < by_stage[2]->peak_memory());
  CHECK(by_stage[2]->peak_memory() < by_stage[1]->peak_memory());
  // The default search tries every stage.
  CHECK(SearchOptions{}.zero_stages == std::vector<int>{0, 1, 2, 3});
  // A cap between stage 3's need and stage 2's: the dp 4 layouts of stages 0-2 are rejected
  // with the bytes they need, stage 3 is planned.
  o.memory_cap = 0.5 * static_cast<double>(by_stage[3]->peak_memory() + by_stage[2]->peak_memory());
  const SearchResult capped = search_layouts(m, 65, cost, o);
  bool zero3 = false;
  for (const PartitionPlan& p : capped.plans) {
    if (p.dp == 4) {
      CHECK(p.zero_stage == 3);
      zero3 = true;
    }
  }
  CHECK(zero3);
  int rejected = 0;
  for (const Rejection& r : capped.rejected) {
    if (r.layout.rfind("dp4 tp1 pp1", 0) == 0) {
      CHECK(r.reason.find("needs") == 0);
      ++rejected;
    }
  }
  CHECK(rejected == 3);
  CHECK(format_plan_details(*by_stage[3]).find("gathered units") != std::string::npos);
}
