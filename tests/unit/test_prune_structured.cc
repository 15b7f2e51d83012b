// Structured pruning: the smaller model (fewer heads, heads * head_dim < hidden, fewer
// neurons) computes the same logits as the big model with the removed heads and neurons
// zeroed; its parameter count matches the layer graph's formula; the argument errors.
#include <catch2/catch.hpp>
#include <cmath>

#include "runtime/compute/compute.h"
#include "partitioner/layer_graph.h"
#include "runtime/compression/structured_prune.h"
#include "runtime/model/head_layer.h"
#include "runtime/model/model.h"
#include "tests/unit/tiny_models.h"

using namespace tessera;
using Catch::Matchers::Equals;

namespace {

ModelConfig tiny() {
  ModelConfig m = tiny_gpt_config(8);
  m.init_std = 0.3f;  // large weights, so that removing a head or a neuron visibly changes the logits
  return m;
}

constexpr int64_t kVocab = 20, kBatch = 2;

Batch batch() {
  Batch b;
  b.tokens = Tensor::empty({kBatch, 8}, DType::I32);
  b.targets = Tensor::empty({kBatch, 8}, DType::I32);
  for (int64_t i = 0; i < kBatch * 8; ++i) {
    b.tokens.i32()[i] = static_cast<int32_t>((i * 7 + 3) % kVocab);
    b.targets.i32()[i] = static_cast<int32_t>((i * 5 + 1) % kVocab);
  }
  return b;
}

std::map<std::string, Tensor> globals(Model& model) {
  std::map<std::string, Tensor> w;
  for (Parameter* p : model.parameters()) w.emplace(p->name, p->value.clone());
  return w;
}

// The logits [B * T, vocab] (and the loss) of a one-process model holding `w`.
std::pair<Tensor, float> run(const ModelConfig& m, const std::map<std::string, Tensor>& w) {
  Model model(m, build_layer_graph(m, kVocab, kBatch), TpGroup::single(), 7);
  for (Parameter* p : model.parameters()) {
    REQUIRE(w.at(p->name).shape() == p->value.shape());
    p->value.copy_from(w.at(p->name));
  }
  const Batch b = batch();
  const std::unique_ptr<Compute> compute = make_cpu_compute(Precision::FP32);
  MicrobatchContext ctx;
  ctx.compute = compute.get();
  ctx.tokens = b.tokens;
  ctx.targets = b.targets;
  ctx.training = false;
  const float loss = model.forward(Tensor(), ctx).f32()[0];
  auto* head = dynamic_cast<HeadLayer*>(model.layers().back().get());
  REQUIRE(head != nullptr);
  return {head->last_logits().clone(), loss};
}

void check_same_logits(const std::vector<BlockScores>& scores, double neurons, double heads) {
  const ModelConfig m = tiny();
  Model big(m, build_layer_graph(m, kVocab, kBatch), TpGroup::single(), 11);
  const auto w = globals(big);
  StructuredPruneOptions o;
  o.neurons = neurons;
  o.heads = heads;
  const StructuredPlan plan = plan_structured(scores.empty() ? weight_scores(w, m) : scores, m, o);
  std::map<std::string, Tensor> masked;  // a deep copy: tensors share storage
  for (const auto& [name, t] : w) masked.emplace(name, t.clone());
  zero_removed(masked, m, plan);
  const ModelConfig small = pruned_model_config(m, plan);
  const auto shrunk = shrink_weights(w, m, plan);
  const auto [want, want_loss] = run(m, masked);
  const auto [got, got_loss] = run(small, shrunk);
  REQUIRE(got.shape() == want.shape());
  for (int64_t i = 0; i < got.numel(); ++i) CHECK(got.f32()[i] == Approx(want.f32()[i]).epsilon(1e-5).margin(1e-5));
  CHECK(got_loss == Approx(want_loss).epsilon(1e-6));
  // The layer graph's formulas (with head_dim) count exactly the smaller model's tensors.
  int64_t numel = 0;
  for (const auto& [name, t] : shrunk) numel += t.numel();
  CHECK(build_layer_graph(small, kVocab, kBatch).total_params() == numel);
  // And the unpruned model is really different: the removed structures mattered.
  const auto [dense, dense_loss] = run(m, w);
  float largest = 0;
  for (int64_t i = 0; i < got.numel(); ++i) largest = std::max(largest, std::fabs(dense.f32()[i] - want.f32()[i]));
  CHECK(largest > 1e-2f);
}

}  // namespace

TEST_CASE("structured prune: the smaller model's logits equal the masked big model's", "[prune]") {
  SECTION("half the neurons and half the heads, by weight norm") { check_same_logits({}, 0.5, 0.5); }
  SECTION("a quarter of the heads: 3 heads of width 8 under hidden 32") { check_same_logits({}, 0.25, 0.25); }
  SECTION("by mean |activation| on a batch") {
    const ModelConfig m = tiny();
    Model big(m, build_layer_graph(m, kVocab, kBatch), TpGroup::single(), 11);
    const auto scores = activation_scores(globals(big), m, kVocab, batch());
    REQUIRE(scores.size() == 2);
    CHECK(scores[0].heads.size() == 4);
    CHECK(scores[0].neurons.size() == 64);
    for (double s : scores[1].neurons) CHECK(s >= 0);
    check_same_logits(scores, 0.5, 0.5);
  }
}

TEST_CASE("structured prune: the plan keeps the highest scores, same counts in every block", "[prune]") {
  const ModelConfig m = tiny();
  std::vector<BlockScores> scores(2);
  for (int l = 0; l < 2; ++l) {
    scores[l].heads = {0.1, 0.9, 0.5, 0.2};
    for (int j = 0; j < 64; ++j) scores[l].neurons.push_back(l == 0 ? j : 64 - j);
  }
  StructuredPruneOptions o;
  o.neurons = 0.75;
  o.heads = 0.5;
  const StructuredPlan plan = plan_structured(scores, m, o);
  CHECK(plan.heads == 2);
  CHECK(plan.ffn == 16);
  CHECK(plan.head_dim == 8);
  CHECK(plan.keep_heads[0] == std::vector<int64_t>{1, 2});
  CHECK(plan.keep_neurons[0].front() == 48);
  CHECK(plan.keep_neurons[1].back() == 15);
  const ModelConfig small = pruned_model_config(m, plan);
  CHECK(small.num_attention_heads == 2);
  CHECK(small.ffn_hidden_size == 16);
  CHECK(attention_head_dim(small) == 8);
}

TEST_CASE("structured prune: bad arguments are one clear line", "[prune]") {
  StructuredPruneOptions o;
  parse_structured("neurons=0.5,heads=0.25", o);
  CHECK(o.neurons == 0.5);
  CHECK(o.heads == 0.25);
  CHECK_THROWS_WITH(parse_structured("heads=1", o),
                    Equals("--structured heads=1: heads=1 must be a fraction in [0, 1) (of each block's heads removed)"));
  CHECK_THROWS_WITH(parse_structured("layers=0.5", o),
                    Equals("--structured layers=0.5: must be a list of neurons=FRACTION and heads=FRACTION, e.g. "
                           "neurons=0.5,heads=0.25"));
  CHECK_THROWS_AS(parse_structured("heads=x", o), InputError);

  const ModelConfig m = tiny();
  std::vector<BlockScores> scores(2);
  for (auto& s : scores) {
    s.heads.assign(4, 1.0);
    s.neurons.assign(64, 1.0);
  }
  StructuredPruneOptions all;
  all.heads = 0.9;
  CHECK_THROWS_WITH(plan_structured(scores, m, all),
                    Equals("--structured heads=0.9: would remove 4 of the 4 heads of each block (at most 3)"));
  StructuredPruneOptions odd;
  odd.heads = 0.25;
  odd.tp = 2;
  CHECK_THROWS_WITH(plan_structured(scores, m, odd),
                    Equals("--structured heads=0.25: leaves 3 heads per block, not divisible by "
                           "parallel.tensor_model_parallel_size = 2"));
  odd.heads = 0.5;
  CHECK_NOTHROW(plan_structured(scores, m, odd));
}
