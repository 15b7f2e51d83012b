// PartitionPlan JSON and config overrides.
#include "partitioner/partition_plan.h"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace tessera {

int64_t PartitionPlan::peak_memory() const {
  int64_t m = 0;
  for (const auto& s : memory) m = std::max(m, s.total());
  return m;
}

std::string PartitionPlan::label() const {
  std::string s = fmt::format("dp{} tp{} pp{}", dp, tp, pp);
  if (virtual_stages > 1) s += fmt::format(" v{}", virtual_stages);
  return s;
}

nlohmann::json to_json(const PartitionPlan& p) {
  nlohmann::json memory = nlohmann::json::array();
  for (const auto& m : p.memory) memory.push_back(to_json(m));
  const StepBreakdown& b = p.breakdown;
  return {{"model", p.model},
          {"cluster", p.cluster},
          {"world", p.world},
          {"dp", p.dp},
          {"tp", p.tp},
          {"pp", p.pp},
          {"virtual_stages", p.virtual_stages},
          {"micro_batch_size", p.micro_batch_size},
          {"microbatches", p.microbatches},
          {"global_batch_size", p.global_batch_size},
          {"seq_length", p.seq_length},
          {"schedule", p.schedule},
          {"recompute", p.recompute},
          {"sequence_parallel", p.sequence_parallel},
          {"zero_stage", p.zero_stage},
          {"precision", p.precision},
          {"partition", p.partition},
          {"predicted",
           {{"step_time_s", p.step_time_s},
            {"tokens_per_s", p.tokens_per_s},
            {"mfu", p.mfu},
            {"bubble", p.bubble},
            {"peak_memory_bytes", p.peak_memory()},
            {"stage_time_s", p.stage_time_s},
            {"memory_per_stage", memory},
            {"breakdown",
             {{"pipeline_s", b.pipeline_s},
              {"compute_s", b.compute_s},
              {"tp_comm_s", b.tp_comm_s},
              {"p2p_s", b.p2p_s},
              {"dp_comm_s", b.dp_comm_s},
              {"dp_exposed_s", b.dp_exposed_s},
              {"dp_bytes", b.dp_bytes},
              {"optimizer_s", b.optimizer_s},
              {"contention_s", b.contention_s}}}}}};
}

PartitionPlan plan_from_json(const nlohmann::json& j) {
  try {
    PartitionPlan p;
    p.model = j.at("model").get<std::string>();
    p.cluster = j.at("cluster").get<std::string>();
    p.world = j.at("world").get<int>();
    p.dp = j.at("dp").get<int>();
    p.tp = j.at("tp").get<int>();
    p.pp = j.at("pp").get<int>();
    p.virtual_stages = j.at("virtual_stages").get<int>();
    p.micro_batch_size = j.at("micro_batch_size").get<int>();
    p.microbatches = j.at("microbatches").get<int>();
    p.global_batch_size = j.at("global_batch_size").get<int>();
    p.seq_length = j.at("seq_length").get<int>();
    p.schedule = j.at("schedule").get<std::string>();
    p.recompute = j.at("recompute").get<std::string>();
    p.sequence_parallel = j.at("sequence_parallel").get<bool>();
    p.zero_stage = j.at("zero_stage").get<int>();
    p.precision = j.at("precision").get<std::string>();
    p.partition = j.at("partition").get<std::vector<int>>();
    const auto& pr = j.at("predicted");
    p.step_time_s = pr.at("step_time_s").get<double>();
    p.tokens_per_s = pr.at("tokens_per_s").get<double>();
    p.mfu = pr.at("mfu").get<double>();
    p.bubble = pr.at("bubble").get<double>();
    p.stage_time_s = pr.at("stage_time_s").get<std::vector<double>>();
    for (const auto& m : pr.at("memory_per_stage")) p.memory.push_back(memory_from_json(m));
    const auto& b = pr.at("breakdown");
    p.breakdown.pipeline_s = b.at("pipeline_s").get<double>();
    p.breakdown.compute_s = b.at("compute_s").get<double>();
    p.breakdown.tp_comm_s = b.at("tp_comm_s").get<double>();
    p.breakdown.p2p_s = b.at("p2p_s").get<double>();
    p.breakdown.dp_comm_s = b.at("dp_comm_s").get<double>();
    p.breakdown.dp_exposed_s = b.at("dp_exposed_s").get<double>();
    p.breakdown.dp_bytes = b.value("dp_bytes", 0.0);  // plans written before the traffic was reported
    p.breakdown.optimizer_s = b.at("optimizer_s").get<double>();
    p.breakdown.contention_s = b.at("contention_s").get<double>();
    TESSERA_REQUIRE(p.world == p.dp * p.tp * p.pp, "plan: world {} != dp {} x tp {} x pp {}", p.world, p.dp,
                    p.tp, p.pp);
    TESSERA_REQUIRE(static_cast<int>(p.partition.size()) == p.pp * p.virtual_stages,
                    "plan: partition has {} entries, not pp {} x virtual_stages {}", p.partition.size(), p.pp,
                    p.virtual_stages);
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("plan JSON: {}", e.what()));
  }
}

std::vector<std::string> plan_overrides(const PartitionPlan& p) {
  return {fmt::format("parallel.tensor_model_parallel_size={}", p.tp),
          fmt::format("parallel.pipeline_model_parallel_size={}", p.pp),
          fmt::format("parallel.data_parallel_size={}", p.dp),
          fmt::format("parallel.schedule={}", p.schedule),
          fmt::format("parallel.virtual_stages={}", p.virtual_stages),
          fmt::format("parallel.partition=[{}]", fmt::join(p.partition, ",")),
          fmt::format("parallel.recompute={}", p.recompute),
          fmt::format("parallel.sequence_parallel={}", p.sequence_parallel ? "true" : "false"),
          fmt::format("parallel.zero_stage={}", p.zero_stage),
          fmt::format("train.micro_batch_size={}", p.micro_batch_size)};
}

}  // namespace tessera
