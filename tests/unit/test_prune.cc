// Unstructured pruning: exact sparsity per scope (zeros counted), N:M groups with exactly N
// nonzeros, which weights are prunable, the argument errors, and masks held by AdamW.
#include <catch2/catch.hpp>
#include <cmath>

#include "runtime/compression/magnitude_prune.h"
#include "runtime/compression/mask.h"
#include "runtime/compute/cpu_backend.h"
#include "runtime/model/parameter.h"
#include "runtime/train/optimizer.h"

using namespace tessera;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

int64_t zeros(const Tensor& t) {
  int64_t n = 0;
  for (int64_t i = 0; i < t.numel(); ++i) n += t.f32()[i] == 0.f;
  return n;
}

std::map<std::string, Tensor> weights() {
  return {{"h.0.attn.c_attn.weight", init_normal({24, 8}, 1.f, 1, "a")},
          {"h.0.mlp.c_fc.weight", init_normal({16, 8}, 0.1f, 1, "b")},  // 10x smaller: pruned first globally
          {"lm_head.weight", init_normal({10, 8}, 1.f, 1, "c")}};
}

}  // namespace

TEST_CASE("prune: global scope prunes exactly round(s * n) weights, smallest |w| over all tensors", "[prune]") {
  const auto w = weights();
  MagnitudePruneOptions o;
  o.sparsity = 0.3;
  const auto masks = magnitude_masks(w, o);
  const int64_t total = 24 * 8 + 16 * 8 + 10 * 8;
  int64_t pruned = 0;
  float largest_pruned = 0, smallest_kept = 1e30f;
  for (const auto& [name, m] : masks) {
    pruned += zeros(m);
    const Tensor& t = w.at(name);
    for (int64_t i = 0; i < t.numel(); ++i) {
      const float a = std::fabs(t.f32()[i]);
      if (m.f32()[i] == 0.f) {
        largest_pruned = std::max(largest_pruned, a);
      } else {
        smallest_kept = std::min(smallest_kept, a);
      }
    }
  }
  CHECK(pruned == std::llround(0.3 * total));
  CHECK(largest_pruned <= smallest_kept);
  // The small-valued tensor loses far more than its share under one global threshold.
  CHECK(zeros(masks.at("h.0.mlp.c_fc.weight")) > std::llround(0.3 * 128));
}

TEST_CASE("prune: layer scope prunes exactly round(s * n) of every tensor", "[prune]") {
  const auto w = weights();
  for (double s : {0.0, 0.25, 0.5, 0.9}) {
    MagnitudePruneOptions o;
    o.sparsity = s;
    o.scope = MagnitudePruneOptions::Scope::Layer;
    for (const auto& [name, m] : magnitude_masks(w, o)) CHECK(zeros(m) == std::llround(s * m.numel()));
  }
}

TEST_CASE("prune: 2:4 keeps exactly the 2 largest |w| of every 4 along the input dimension", "[prune]") {
  const auto w = weights();
  MagnitudePruneOptions o;
  o.pattern_n = 2;
  o.pattern_m = 4;
  for (const auto& [name, m] : magnitude_masks(w, o)) {
    const Tensor& t = w.at(name);
    CHECK(zeros(m) == m.numel() / 2);
    for (int64_t g = 0; g < t.numel(); g += 4) {
      int kept = 0;
      float min_kept = 1e30f, max_pruned = 0;
      for (int j = 0; j < 4; ++j) {
        const float a = std::fabs(t.f32()[g + j]);
        if (m.f32()[g + j] != 0.f) {
          ++kept;
          min_kept = std::min(min_kept, a);
        } else {
          max_pruned = std::max(max_pruned, a);
        }
      }
      CHECK(kept == 2);
      CHECK(max_pruned <= min_kept);
    }
  }
}

TEST_CASE("prune: only linear-layer matrices are prunable; embeddings when asked", "[prune]") {
  for (const char* name : {"h.3.attn.c_attn.weight", "h.3.attn.c_proj.weight", "h.0.mlp.c_fc.weight",
                           "h.0.mlp.c_proj.weight", "lm_head.weight", "fc.1.weight", "head.weight"}) {
    CHECK(is_prunable_weight(name, false));
  }
  for (const char* name : {"h.0.attn.c_attn.bias", "h.0.ln_1.weight", "ln_f.weight", "h.0.mlp.c_fc.bias",
                           "fc.1.bias", "wte.weight", "wpe.weight"}) {
    CHECK_FALSE(is_prunable_weight(name, false));
  }
  CHECK(is_prunable_weight("wte.weight", true));
  CHECK(is_prunable_weight("wpe.weight", true));
  CHECK_FALSE(is_prunable_weight("ln_f.bias", true));
}

TEST_CASE("prune: bad sparsity, pattern or shape is one clear line", "[prune]") {
  const auto w = weights();
  MagnitudePruneOptions o;
  o.sparsity = 1.0;
  CHECK_THROWS_WITH(magnitude_masks(w, o), Equals("--sparsity 1: must be in [0, 1) (the fraction of weights pruned)"));
  o.sparsity = -0.1;
  CHECK_THROWS_AS(magnitude_masks(w, o), InputError);
  CHECK(parse_nm_pattern("2:4") == std::pair<int, int>{2, 4});
  CHECK(parse_nm_pattern("1:8") == std::pair<int, int>{1, 8});
  for (const char* bad : {"4:2", "2:2", "0:4", "2-4", "2:4x", "abc", ""}) {
    CHECK_THROWS_WITH(parse_nm_pattern(bad),
                      Equals(fmt::format("--pattern {}: must be N:M with 0 < N < M (keep N of every M weights), e.g. 2:4",
                                         bad)));
  }
  o.pattern_n = 2;
  o.pattern_m = 3;
  CHECK_THROWS_WITH(magnitude_masks(w, o), Contains("--pattern 2:3: tensor 'h.0.attn.c_attn.weight' of shape [24, 8] "
                                                    "has an input dimension of 8, not a multiple of 3"));
}

TEST_CASE("prune: AdamW with weight decay keeps masked weights and moments exactly zero", "[prune]") {
  Parameter p = make_parameter("h.0.mlp.c_fc.weight", {16, 8}, ShardSpec::replicated(), 0, 1, 0.5f, 0, 3, true);
  MagnitudePruneOptions o;
  o.sparsity = 0.5;
  p.mask = magnitude_masks({{p.name, p.value}}, o).at(p.name);
  apply_mask(p.value.f32(), p.mask.f32(), p.value.numel());
  const Tensor before = p.value.clone();
  OptimizerConfig cfg;
  cfg.weight_decay = 0.1;
  CpuBackend cpu(CpuGemm::Eigen);
  AdamW adam({&p}, cfg, cpu);
  for (int step = 0; step < 5; ++step) {
    // Gradients everywhere, masked entries included: the optimizer must not let them in.
    p.grad.copy_from(init_normal({16, 8}, 1.f, step, "grad"));
    adam.step(1e-2, 1.0f);
  }
  int64_t changed = 0;
  for (int64_t i = 0; i < p.value.numel(); ++i) {
    if (p.mask.f32()[i] == 0.f) {
      CHECK(p.value.f32()[i] == 0.f);
      CHECK(adam.exp_avg(0).f32()[i] == 0.f);
      CHECK(adam.exp_avg_sq(0).f32()[i] == 0.f);
    } else {
      changed += p.value.f32()[i] != before.f32()[i];
    }
  }
  CHECK(changed == 64);  // the kept half trained
  CHECK(sparsity_stats({&p}).pruned == 64);
  CHECK(sparsity_stats({&p}).nonzero_pruned == 0);
}

TEST_CASE("prune: mask_gradients zeroes masked gradient entries only", "[prune]") {
  Parameter p = make_parameter("w", {2, 2}, ShardSpec::replicated(), 0, 1, 0, 1.f, 0, true);
  Parameter dense = make_parameter("b", {2}, ShardSpec::replicated(), 0, 1, 0, 1.f, 0, false);
  p.mask = Tensor::full({2, 2}, 1.f);
  p.mask.f32()[1] = 0.f;
  p.grad = Tensor::full({2, 2}, 3.f);
  dense.grad = Tensor::full({2}, 3.f);
  mask_gradients({&p, &dense});
  CHECK(p.grad.f32()[0] == 3.f);
  CHECK(p.grad.f32()[1] == 0.f);
  CHECK(dense.grad.f32()[1] == 3.f);
}
