// Gradual pruning: the cubic schedule's steps and values, exact counts (zeros counted) at
// every re-pruning of a training run in both scopes, pruned weights held at zero in between,
// ties broken by position, and the prune.* config rules.
#include <catch2/catch.hpp>
#include <cmath>

#include "launcher/config_loader.h"
#include "runtime/compression/gradual_prune.h"
#include "runtime/compression/magnitude_prune.h"
#include "runtime/compression/mask.h"
#include "test_custom_layer_util.h"

using namespace tessera;
using Catch::Matchers::Equals;
using Catch::Matchers::WithinAbs;

namespace {

PruneConfig schedule(double target, int start, int end, int interval, const std::string& scope = "global") {
  PruneConfig p;
  p.target_sparsity = target;
  p.start_step = start;
  p.end_step = end;
  p.interval = interval;
  p.scope = scope;
  return p;
}

int64_t zeros(const Tensor& t) {
  int64_t n = 0;
  for (int64_t i = 0; i < t.numel(); ++i) n += t.f32()[i] == 0.f;
  return n;
}

}  // namespace

TEST_CASE("gradual prune: re-prunings at start, start + interval, ..., end, none when off", "[prune]") {
  const PruneConfig p = schedule(0.5, 2, 10, 2);
  std::vector<int64_t> steps;
  for (int64_t t = 0; t <= 14; ++t) {
    if (is_prune_step(p, t)) steps.push_back(t);
  }
  CHECK(steps == std::vector<int64_t>{2, 4, 6, 8, 10});
  CHECK_FALSE(is_prune_step(schedule(0, 2, 10, 2), 4));
}

TEST_CASE("gradual prune: the cubic schedule of Zhu and Gupta", "[prune]") {
  const PruneConfig p = schedule(0.5, 2, 10, 2);
  CHECK(scheduled_sparsity(p, 0) == 0);
  CHECK(scheduled_sparsity(p, 2) == 0);
  // s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 with s_i = 0: at t = 4, 1 - 2/8 = 0.75.
  CHECK_THAT(scheduled_sparsity(p, 4), WithinAbs(0.5 - 0.5 * 0.421875, 1e-12));
  CHECK_THAT(scheduled_sparsity(p, 6), WithinAbs(0.5 - 0.5 * 0.125, 1e-12));
  CHECK(scheduled_sparsity(p, 10) == 0.5);
  CHECK(scheduled_sparsity(p, 50) == 0.5);
}

TEST_CASE("gradual prune: equal magnitudes go in position order", "[prune]") {
  Parameter w = make_parameter("h.0.mlp.c_fc.weight", {4, 4}, ShardSpec::replicated(), 0, 1, 0.f, 1.f, 1, true);
  for (int64_t i = 0; i < 16; i += 3) w.value.f32()[i] = -1.f;  // same |w| as the rest
  w.value.f32()[15] = 0.5f;
  const PruneCounts c = prune_to_sparsity({&w}, 0.5, true, {}, PruneGroups{});
  CHECK(c.pruned == 8);
  CHECK(c.total == 16);
  // The smallest (index 15) first, then indices 0..6 of the fifteen tied at 1.
  for (int64_t i = 0; i < 16; ++i) {
    INFO("entry " << i);
    CHECK(w.mask.f32()[i] == (i < 7 || i == 15 ? 0.f : 1.f));
    CHECK((w.value.f32()[i] == 0.f) == (w.mask.f32()[i] == 0.f));
  }
}

TEST_CASE("gradual prune: a training run follows the schedule exactly at every re-pruning", "[prune]") {
  const std::string scope = GENERATE(std::string("global"), std::string("layer"));
  INFO("scope " << scope);
  Config c = test::tiny_trainer_config();
  c.train.max_steps = 12;
  c.prune = schedule(0.6, 2, 10, 2, scope);
  const Dataset data = test::tiny_dataset();
  Trainer trainer(c, data, ParallelGroups{});
  std::vector<Parameter*> prunable;
  for (Parameter* p : trainer.parameters()) {
    if (is_prunable_weight(p->name, false)) prunable.push_back(p);
  }
  REQUIRE(prunable.size() == 9);  // 4 per block and lm_head
  double last = 0;
  while (trainer.step() < c.train.max_steps) {
    trainer.train_step();
    const int64_t t = trainer.step();
    const SparsityStats s = sparsity_stats(prunable);
    CHECK(s.nonzero_pruned == 0);  // pruned weights stay exactly 0 between re-prunings
    if (t < 2) {
      CHECK(s.masked_params == 0);
      continue;
    }
    const double target = scheduled_sparsity(c.prune, t);
    if (is_prune_step(c.prune, t)) last = target;
    int64_t total_zeros = 0, total = 0;
    for (Parameter* p : prunable) {
      total_zeros += zeros(p->value);
      total += p->value.numel();
      CHECK(zeros(p->mask) == zeros(p->value));
      if (scope == "layer") CHECK(zeros(p->value) == std::llround(last * p->value.numel()));
    }
    INFO("step " << t << ", sparsity " << last);
    if (scope == "global") CHECK(total_zeros == std::llround(last * total));
  }
  CHECK(last == 0.6);
}

TEST_CASE("gradual prune: bad prune.* keys are one line naming the key and the rule", "[prune]") {
  const auto error_of = [](const std::vector<std::string>& overrides) -> std::string {
    try {
      parse_config_string("data:\n  path: x.txt\n", "p.yaml", overrides);
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  };
  const std::vector<std::string> on{"prune.target_sparsity=0.5", "prune.start_step=2", "prune.interval=2"};
  const auto with = [&](const std::string& extra) {
    std::vector<std::string> o = on;
    o.push_back(extra);
    return o;
  };
  CHECK_THAT(error_of(with("prune.end_step=7")),
             Equals("p.yaml: --set prune.end_step = 7: must be prune.start_step = 2 plus a multiple of "
                    "prune.interval = 2"));
  CHECK_THAT(error_of(with("prune.end_step=2")),
             Equals("p.yaml: --set prune.end_step = 2: must be greater than prune.start_step = 2"));
  CHECK_THAT(error_of({"prune.target_sparsity=1"}),
             Equals("p.yaml: --set prune.target_sparsity = 1: must be a number in [0, 1) (the fraction of weights "
                    "pruned at prune.end_step; 0: off)"));
  CHECK_THAT(error_of({"prune.scope=row"}),
             Equals("p.yaml: --set prune.scope = 'row': must be one of global, layer"));
  CHECK(error_of(with("prune.end_step=10")) == "no error");
  CHECK(error_of({"prune.end_step=7"}) == "no error");  // no rule between the steps while off
}
