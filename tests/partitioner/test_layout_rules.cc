// The layout rules (partitioner/layout_rules): each violation names the key, its value, the rule
// in config terms and the planner's short form, so the config validator, the planner, the
// trainer and the manifest reader state the same rule.
#include <catch2/catch.hpp>

#include "partitioner/layout_rules.h"
#include "tests/unit/tiny_models.h"

namespace tessera {
namespace {

std::vector<LayoutRule> rules_of(const std::vector<LayoutViolation>& vs) {
  std::vector<LayoutRule> out;
  for (const LayoutViolation& v : vs) out.push_back(v.rule);
  return out;
}

}  // namespace

TEST_CASE("layout rules: tp must divide heads, hidden and ffn", "[partitioner][rules]") {
  const ModelConfig m = tiny_gpt_config();  // 4 heads, hidden 32, ffn 64
  LayoutFacts l;
  l.tp = 3;
  const std::vector<LayoutViolation> vs = layout_violations(m, l);
  CHECK(rules_of(vs) == std::vector<LayoutRule>{LayoutRule::HeadsDivisibleByTp, LayoutRule::HiddenDivisibleByTp,
                                                LayoutRule::FfnDivisibleByTp});
  CHECK(vs[0].line() == "model.num_attention_heads = 4: must be divisible by parallel.tensor_model_parallel_size = 3");
  CHECK(vs[0].brief == "heads 4 not divisible by tp = 3");
  l.tp = 8;
  CHECK(first_layout_violation(m, l)->brief == "tp = 8 > heads 4");
  l.tp = 4;
  CHECK(layout_violations(m, l).empty());
  l.sequence_parallel = true;
  l.tp = 4;
  ModelConfig odd = m;
  odd.seq_length = 18;
  CHECK(first_layout_violation(odd, l)->line() ==
        "model.seq_length = 18: must be divisible by parallel.tensor_model_parallel_size = 4 with "
        "parallel.sequence_parallel");
}

TEST_CASE("layout rules: stages, schedule and partition", "[partitioner][rules]") {
  const ModelConfig m = tiny_gpt_config();  // 4 graph layers
  LayoutFacts l;
  l.pp = 5;
  CHECK(first_layout_violation(m, l)->line() ==
        "parallel.pipeline_model_parallel_size = 5: pipeline_model_parallel_size * virtual_stages = 5 stages is "
        "more than the model's 4 layers (model.num_layers = 2 plus embedding and head)");
  l.custom_layers = 1;  // an embedding program's layer makes room for a fifth stage
  CHECK_FALSE(first_layout_violation(m, l).has_value());
  l = LayoutFacts{};
  l.schedule = ScheduleKind::Interleaved;
  CHECK(rules_of(layout_violations(m, l)) ==
        std::vector<LayoutRule>{LayoutRule::InterleavedNeedsVirtualStages, LayoutRule::InterleavedNeedsPipeline});
  CHECK(layout_violations(m, l)[0].line() == "parallel.schedule = 'interleaved': needs parallel.virtual_stages > 1");
  l = LayoutFacts{};
  l.pp = 2;
  l.partition = {1, 2};
  CHECK(first_layout_violation(m, l)->line() ==
        "parallel.partition = [1, 2]: must sum to the model's 4 layers (model.num_layers = 2 plus embedding and "
        "head), not 3");
  l.partition = {4};
  CHECK(first_layout_violation(m, l)->rule == LayoutRule::PartitionEntries);
}

TEST_CASE("layout rules: the batch rules need dp", "[partitioner][rules]") {
  const ModelConfig m = tiny_gpt_config();
  Config c;
  c.model = m;
  c.train.micro_batch_size = 4;
  c.train.global_batch_size = 12;
  CHECK(layout_violations(m, layout_facts(c)).empty());  // no world: dp unknown, not checked
  const LayoutFacts two = layout_facts(c, 2);
  CHECK(two.dp == 2);
  CHECK(first_layout_violation(m, two)->line() ==
        "train.global_batch_size = 12: must be divisible by micro_batch_size * data_parallel_size = 4 * 2 = 8 "
        "(data_parallel_size auto = world size 2 / 1)");
  c.parallel.pipeline_model_parallel_size = 2;
  c.parallel.virtual_stages = 2;
  c.parallel.schedule = "interleaved";
  c.train.global_batch_size = 12;
  c.train.micro_batch_size = 4;
  CHECK(first_layout_violation(m, layout_facts(c, 2))->brief ==
        "interleaved needs microbatches divisible by pp 2, not 3");
  CHECK(resolve_data_parallel_size(0, 8, 2, 2) == 2);
  CHECK(resolve_data_parallel_size(3, 8, 2, 2) == 3);
}

TEST_CASE("the model's shape rule", "[partitioner][rules]") {
  ModelConfig m = tiny_gpt_config();
  CHECK_FALSE(model_shape_violation(m).has_value());
  m.num_attention_heads = 5;
  CHECK(model_shape_violation(m)->line() == "model.hidden_size = 32: must be divisible by model.num_attention_heads = 5");
  m.head_dim = 8;  // pruned heads: the attention width need not be the hidden size
  CHECK_FALSE(model_shape_violation(m).has_value());
}

}  // namespace tessera

namespace tessera {

// The llama rules (model.arch: llama, from main's config validator and planner) have the same
// owner: the config check, the planner's rejection and the manifest reader state them alike.
TEST_CASE("llama: normalization, query groups, rotary width, tied embeddings", "[partitioner][rules][llama]") {
  ModelConfig m = tiny_gpt_config();  // hidden 32, 4 heads
  m.arch = "llama";
  m.normalization = "rmsnorm";
  m.num_query_groups = 2;
  CHECK_FALSE(model_shape_violation(m).has_value());
  m.normalization = "layernorm";
  CHECK(model_shape_violation(m)->line() == "model.normalization = 'layernorm': must be rmsnorm for model.arch: llama");
  m.normalization = "rmsnorm";
  m.num_query_groups = 3;
  CHECK(model_shape_violation(m)->line() == "model.num_query_groups = 3: must divide model.num_attention_heads = 4");
  m.num_query_groups = 2;
  m.hidden_size = 36;  // head width 9
  CHECK(model_shape_violation(m)->rule == LayoutRule::EvenHeadWidth);
  m.hidden_size = 32;

  LayoutFacts l;
  l.tp = 4;  // divides the 4 heads, not the 2 key/value groups
  const std::optional<LayoutViolation> v = first_layout_violation(m, l);
  REQUIRE(v.has_value());
  CHECK(v->line() == "model.num_query_groups = 2: must be divisible by parallel.tensor_model_parallel_size = 4 "
                     "(key/value groups are split over tensor-parallel ranks, not replicated)");
  CHECK(v->brief == "tp = 4 > key/value groups 2");
  l.tp = 2;
  CHECK(layout_violations(m, l).empty());
  l.pp = 2;  // tied embedding and head must share a stage
  CHECK(first_layout_violation(m, l)->brief == "tied embedding and output weights need pp = 1");
  m.untie_embeddings_and_output_weights = true;
  CHECK(layout_violations(m, l).empty());
}

}  // namespace tessera
