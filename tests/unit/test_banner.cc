// The start-up banner of `tessera train`: layout, stage partition, model size, data,
// checkpoint state, and the partitioner's prediction for the stages the trainer runs.
#include <catch2/catch.hpp>

#include "launcher/banner.h"
#include "launcher/config_loader.h"
#include "partitioner/layout_search.h"
#include "runtime/train/trainer.h"

using namespace tessera;

namespace {

ClusterModel test_cluster() {
  ClusterModel c;
  c.name = "test";
  c.source = "test.yaml";
  c.devices_per_node = 8;
  c.device.peak_flops = 50e12;
  c.device.memory_bytes = 40.0 * (1 << 30);
  c.device.memory_bandwidth = 1e12;
  c.intra_node = c.inter_node = {3e-6, 100e9};
  return c;
}

Config tp2_pp2() {
  return parse_config_string(
      "model: {num_layers: 4, hidden_size: 64, num_attention_heads: 4, seq_length: 32}\n"
      "parallel: {tensor_model_parallel_size: 2, pipeline_model_parallel_size: 2}\n"
      "train: {micro_batch_size: 3, global_batch_size: 12, max_steps: 50}\n"
      "checkpoint: {dir: runs/x, interval: 25, resume: auto}\n",
      "x.yaml");
}

std::string line_starting(const std::string& text, const std::string& prefix) {
  const size_t at = text.find("\n" + prefix);
  if (at == std::string::npos) return "";
  return text.substr(at + 1, text.find('\n', at + 1) - at - 1);
}

}  // namespace

TEST_CASE("the banner names the layout, stages, model, data and checkpoint state", "[banner]") {
  const Config c = tp2_pp2();
  const LayerGraph graph = build_layer_graph(c.model, 65, c.train.micro_batch_size);
  RunFacts f;
  f.world = 4;
  f.threads = 1;
  f.partition = stage_partition(c.parallel, graph);
  f.train_tokens = 1003854;
  f.val_tokens = 111540;
  f.vocab = 65;
  f.resume = "auto: no checkpoint in runs/x yet, from step 0";
  f.prediction_source = "no machine model (run `tessera plan --calibrate` once)";
  const std::string b = format_banner(c, graph, f);
  CHECK(b.starts_with(fmt::format("tessera {} | world 4 = dp 1 x tp 2 x pp 2 | 1 thread per rank\n", TESSERA_VERSION)));
  CHECK(line_starting(b, "  layout") ==
        "  layout      schedule 1f1b, v 1, 4 microbatches of 3 per rank, sp off, zero 0, recompute none");
  CHECK(line_starting(b, "  stages") == "  stages      [3, 3] (auto): pp0 embedding..h.1 | pp1 h.2..head");
  CHECK(line_starting(b, "  model").starts_with("  model       gpt, 4 layers x 64 hidden, 4 heads, ffn 256, seq 32, vocab 65: 0."));
  CHECK(line_starting(b, "  model").ends_with("M parameters"));
  CHECK(line_starting(b, "  data") ==
        "  data        data/tinyshakespeare.txt (text, vocab chars): 1.00M train / 111.5k val tokens, global batch 12 x 32 tokens");
  CHECK(line_starting(b, "  checkpoint") ==
        "  checkpoint  runs/x, every 25 steps and at the end, keep 3; resume auto: no checkpoint in runs/x yet, from step 0");
  CHECK(line_starting(b, "  predicted") == "  predicted   none: no machine model (run `tessera plan --calibrate` once)");
  // Local SGD / DiLoCo: the layout line says how the replicas sync.
  Config d = c;
  d.parallel.data_parallel_sync = "diloco";
  d.parallel.sync_interval = 20;
  d.parallel.outer_fragments = 2;
  d.parallel.outer_delay = 1;
  d.parallel.outer_dtype = "bf16";
  CHECK(line_starting(format_banner(d, graph, f), "  layout").ends_with(
      "recompute none, dp sync diloco H=20 (outer lr 0.7, momentum 0.9), streaming: 2 fragments, delay 1, bf16 deltas"));
}

TEST_CASE("the prediction is for the partition the trainer runs", "[banner]") {
  Config c = tp2_pp2();
  c.parallel.partition = {2, 4};
  const LayerGraph graph = build_layer_graph(c.model, 65, c.train.micro_batch_size);
  const PartitionPlan p = plan_config_layout(c, 65, 4, CostModel(test_cluster()), stage_partition(c.parallel, graph));
  CHECK(p.partition == std::vector<int>{2, 4});
  CHECK(p.tp == 2);
  CHECK(p.pp == 2);
  CHECK(p.microbatches == 4);
  REQUIRE(p.memory.size() == 2);
  CHECK(p.step_time_s > 0);

  RunFacts f;
  f.world = 4;
  f.partition = p.partition;
  f.vocab = 65;
  f.predicted = p;
  f.prediction_source = "cluster test, test.yaml";
  const std::string b = format_banner(c, graph, f);
  CHECK(line_starting(b, "  stages") == "  stages      [2, 4]: pp0 embedding..h.0 | pp1 h.1..head");
  const std::string predicted = line_starting(b, "  predicted");
  CHECK(predicted.find(" per step, ") != std::string::npos);
  CHECK(predicted.find("% MFU, bubble ") != std::string::npos);
  CHECK(predicted.find(" (pp0), ") != std::string::npos);
  CHECK(predicted.ends_with(" (pp1) [cluster test, test.yaml]"));
}

namespace {

// An mlp whose stages cost, on a link this slow, their tp all-reduces rather than their FLOPs:
// the column- and row-parallel layers and the embedding each have one, the replicated fc.2 none.
Config mlp_tp2_pp2() {
  return parse_config_string(
      "model: {arch: mlp, num_layers: 3, hidden_size: 32, seq_length: 16}\n"
      "parallel: {tensor_model_parallel_size: 2, pipeline_model_parallel_size: 2}\n"
      "train: {micro_batch_size: 4, global_batch_size: 16, max_steps: 5}\n",
      "mlp.yaml");
}

ClusterModel slow_link_cluster() {
  ClusterModel c = test_cluster();
  c.intra_node = c.inter_node = {1e-6, 1e6};
  return c;
}

// The bring-up's decision (choose_partition, with the cluster as its machine model), as the
// banner receives it.
void decide(RunFacts& f, const Config& c, const LayerGraph& graph, const std::optional<ClusterModel>& cluster) {
  PartitionInputs in;
  in.world = f.world;
  in.vocab = f.vocab;
  in.no_machine_reason = f.prediction_source;
  if (cluster) in.machine = &*cluster;
  take_partition(f, choose_partition(c, graph, in));
}

RunFacts facts_for() {
  RunFacts f;
  f.world = 4;
  f.vocab = 65;
  f.prediction_source = "no machine model";
  return f;
}

}  // namespace

TEST_CASE("partition auto: the cost model's split with a machine model, FLOPs without", "[banner]") {
  const Config c = mlp_tp2_pp2();
  const LayerGraph graph = build_layer_graph(c.model, 65, c.train.micro_batch_size);
  const std::vector<int> flops = stage_partition(c.parallel, graph);
  REQUIRE(flops == std::vector<int>{4, 1});

  RunFacts none = facts_for();
  decide(none, c, graph, std::nullopt);
  CHECK(none.partition == flops);
  CHECK(none.partition_source == "FLOPs");
  CHECK_FALSE(none.predicted.has_value());
  CHECK(line_starting(format_banner(c, graph, none), "  stages") ==
        "  stages      [4, 1] (auto, balanced by FLOPs): pp0 embedding..fc.2 | pp1 head");

  RunFacts with = facts_for();
  decide(with, c, graph, slow_link_cluster());
  CHECK(with.partition == std::vector<int>{2, 3});
  CHECK(with.partition_source == "the cost model");
  REQUIRE(with.predicted.has_value());
  CHECK(with.predicted->partition == with.partition);
  CHECK(with.prediction_source == "cluster test, test.yaml");
  CHECK(line_starting(format_banner(c, graph, with), "  stages") ==
        "  stages      [2, 3] (auto, balanced by the cost model): pp0 embedding..fc.0 | pp1 fc.1..head");
  // The cost model's split is the faster one on that machine.
  const PartitionPlan by_flops = plan_config_layout(c, 65, 4, CostModel(slow_link_cluster()), flops);
  CHECK(with.predicted->step_time_s < by_flops.step_time_s);
}

TEST_CASE("partition auto falls back to FLOPs when the cluster cannot hold the world", "[banner]") {
  const Config c = mlp_tp2_pp2();
  const LayerGraph graph = build_layer_graph(c.model, 65, c.train.micro_batch_size);
  ClusterModel small = slow_link_cluster();
  small.devices_per_node = 2;
  small.nodes = 1;
  RunFacts f = facts_for();
  decide(f, c, graph, small);
  CHECK(f.partition == std::vector<int>{4, 1});
  CHECK(f.partition_source == "FLOPs");
  CHECK_FALSE(f.predicted.has_value());
  CHECK(f.prediction_source == "test.yaml: world 4 needs 2 nodes of 2 devices, the cluster has 1");
}

TEST_CASE("a fixed partition and a single stage keep their banner line", "[banner]") {
  Config c = mlp_tp2_pp2();
  c.parallel.partition = {3, 2};
  const LayerGraph graph = build_layer_graph(c.model, 65, c.train.micro_batch_size);
  RunFacts fixed = facts_for();
  decide(fixed, c, graph, slow_link_cluster());
  CHECK(fixed.partition == std::vector<int>{3, 2});
  CHECK(fixed.partition_source.empty());
  REQUIRE(fixed.predicted.has_value());
  CHECK(fixed.predicted->partition == fixed.partition);
  CHECK(line_starting(format_banner(c, graph, fixed), "  stages") ==
        "  stages      [3, 2]: pp0 embedding..fc.1 | pp1 fc.2..head");

  c.parallel.partition.clear();
  c.parallel.pipeline_model_parallel_size = 1;
  RunFacts one = facts_for();
  one.world = 2;
  decide(one, c, graph, slow_link_cluster());
  CHECK(one.partition == std::vector<int>{5});
  CHECK(one.partition_source.empty());
  CHECK(line_starting(format_banner(c, graph, one), "  stages") == "  stages      [5] (auto): pp0 embedding..head");
}
