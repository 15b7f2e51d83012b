// PartitionPlan JSON round trip, config overrides from a plan, and the planner's text helpers.
#include <catch2/catch.hpp>

#include "launcher/config_loader.h"
#include "partitioner/layout_search.h"
#include "partitioner/plan_report.h"
#include "core/error.h"

using namespace tessera;

namespace {

PartitionPlan sample_plan() {
  ClusterModel c;
  c.name = "test";
  c.devices_per_node = 8;
  c.device.peak_flops = 50e12;
  c.device.memory_bytes = 40.0 * (1 << 30);
  c.device.memory_bandwidth = 1e12;
  c.intra_node = c.inter_node = {3e-6, 100e9};
  ModelConfig m;
  m.num_layers = 6;
  m.hidden_size = 64;
  m.num_attention_heads = 4;
  m.ffn_hidden_size = 256;
  m.seq_length = 32;
  SearchOptions o;
  o.world = 8;
  o.global_batch_size = 16;
  const Layout l{2, 2, 2, 2, 2, ScheduleKind::Interleaved, Recompute::Selective, 1, true};
  Evaluation ev = evaluate_layout(m, 65, CostModel(c), l, o);
  REQUIRE(ev.plan);
  return *ev.plan;
}

}  // namespace

TEST_CASE("plan JSON round trip", "[partitioner][plan]") {
  const PartitionPlan p = sample_plan();
  CHECK(p.partition.size() == 4);
  CHECK(p.memory.size() == 2);
  const nlohmann::json j = to_json(p);
  CHECK(j["schedule"] == "interleaved");
  CHECK(j["predicted"]["peak_memory_bytes"] == p.peak_memory());
  const PartitionPlan back = plan_from_json(nlohmann::json::parse(j.dump()));
  CHECK(to_json(back) == j);
  CHECK(back.partition == p.partition);
  CHECK(back.memory[1].activations == p.memory[1].activations);
  CHECK(back.breakdown.dp_exposed_s == p.breakdown.dp_exposed_s);

  nlohmann::json bad = j;
  bad.erase("tp");
  CHECK_THROWS_AS(plan_from_json(bad), InputError);
  bad = j;
  bad["partition"] = {3, 3, 2};
  CHECK_THROWS_WITH(plan_from_json(bad), "plan: partition has 3 entries, not pp 2 x virtual_stages 2");
}

TEST_CASE("a plan's overrides configure the runtime", "[partitioner][plan]") {
  const PartitionPlan p = sample_plan();
  const std::string yaml =
      "model: {arch: gpt, num_layers: 6, hidden_size: 64, num_attention_heads: 4, ffn_hidden_size: 256, seq_length: 32}\n"
      "train: {micro_batch_size: 4, global_batch_size: 16}\n";
  const Config c = parse_config_string(yaml, "plan.yaml", plan_overrides(p));
  CHECK(c.parallel.tensor_model_parallel_size == 2);
  CHECK(c.parallel.pipeline_model_parallel_size == 2);
  CHECK(c.parallel.data_parallel_size == 2);
  CHECK(c.parallel.schedule == "interleaved");
  CHECK(c.parallel.virtual_stages == 2);
  CHECK(c.parallel.partition == p.partition);
  CHECK(c.parallel.recompute == "selective");
  CHECK(c.parallel.sequence_parallel);
  CHECK(c.parallel.zero_stage == 1);
  CHECK(c.train.micro_batch_size == 2);
  validate_for_world(c, 8);
}

TEST_CASE("planner text helpers", "[partitioner][plan]") {
  CHECK(parse_byte_size("24GiB") == 24.0 * (1ull << 30));
  CHECK(parse_byte_size("24 gib") == 24.0 * (1ull << 30));
  CHECK(parse_byte_size("512MiB") == 512.0 * (1 << 20));
  CHECK(parse_byte_size("80GB") == 80e9);
  CHECK(parse_byte_size("1.5T") == 1.5 * (1ull << 40));
  CHECK(parse_byte_size("4096B") == 4096);
  CHECK_THROWS_WITH(parse_byte_size("lots", "--memory-cap"),
                    "--memory-cap 'lots' must be a positive size with a unit, like 24GiB, 512MiB, 80GB or 4096B");
  CHECK_THROWS_AS(parse_byte_size("24"), InputError);  // 24 bytes is never what was meant
  CHECK_THROWS_AS(parse_byte_size("24 parsecs"), InputError);
  CHECK(format_seconds(0.0123) == "12.3 ms");
  CHECK(format_seconds(1.5) == "1.50 s");
  CHECK(format_rate(14500) == "14.5k");

  SearchResult r;
  r.plans.push_back(sample_plan());
  const std::string table = format_plan_table(r, 10);
  CHECK(table.find("interleaved") != std::string::npos);
  CHECK(table.find("selective") != std::string::npos);
  CHECK(format_plan_details(r.plans[0]).find("rank of stage  1") != std::string::npos);
}

TEST_CASE("partition: auto plans the config's own layout", "[partitioner][plan]") {
  const std::string yaml =
      "model: {arch: gpt, num_layers: 6, hidden_size: 64, num_attention_heads: 4, ffn_hidden_size: 256, seq_length: 32}\n"
      "parallel: {tensor_model_parallel_size: 2, pipeline_model_parallel_size: 2, schedule: 1f1b}\n"
      "train: {micro_batch_size: 2, global_batch_size: 16}\n";
  const Config c = parse_config_string(yaml, "auto.yaml");
  ClusterModel cl;
  cl.name = "test";
  cl.devices_per_node = 8;
  cl.device.peak_flops = 50e12;
  cl.device.memory_bandwidth = 1e12;
  cl.intra_node = cl.inter_node = {3e-6, 100e9};
  const PartitionPlan p = plan_config_layout(c, 65, 8, CostModel(cl));
  CHECK(p.dp == 2);
  CHECK(p.tp == 2);
  CHECK(p.pp == 2);
  CHECK(p.microbatches == 4);
  REQUIRE(p.partition.size() == 2);
  CHECK(p.partition[0] + p.partition[1] == 8);
  CHECK_THROWS_WITH(plan_config_layout(c, 65, 6, CostModel(cl)), "world size 6 is not divisible by tp 2 x pp 2");
}
