// Tests of the CPU cross-entropy pieces: against a double reference, composed across simulated
// vocabulary shards, and with vocabulary padding.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "kernels/cross_entropy.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

namespace {

struct Shard {
  int64_t vocab_start;
  int64_t V_local;
  int64_t valid;
};

struct CeOutput {
  std::vector<float> loss;     // [rows]
  std::vector<float> dlogits;  // [rows, V] in global vocabulary order
};

// Runs the pieces the way the runtime does across tensor-parallel ranks: row max per shard,
// max-reduce, partial sums per shard with the global max, sum-reduce, loss, backward per shard.
// Shard s sees columns [vocab_start, vocab_start + valid) of logits [rows, V]; the rest of its
// V_local columns are padding, filled with NaN to prove they are never read.
CeOutput run_sharded(const std::vector<float>& logits, const std::vector<int32_t>& targets,
                     const std::vector<float>& dloss, int64_t rows, int64_t V,
                     const std::vector<Shard>& shards) {
  std::vector<std::vector<float>> local(shards.size());
  std::vector<float> row_max(rows, -INFINITY), sum_exp(rows, 0.0f), target_logit(rows, 0.0f);
  std::vector<float> part_max(rows), part_sum(rows), part_target(rows);
  for (size_t s = 0; s < shards.size(); ++s) {
    const Shard& sh = shards[s];
    local[s].assign(rows * sh.V_local, NAN);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < sh.valid; ++c) {
        local[s][r * sh.V_local + c] = logits[r * V + sh.vocab_start + c];
      }
    }
    cross_entropy_row_max(part_max.data(), local[s].data(), rows, sh.V_local, sh.valid);
    for (int64_t r = 0; r < rows; ++r) row_max[r] = std::max(row_max[r], part_max[r]);
  }
  for (size_t s = 0; s < shards.size(); ++s) {
    const Shard& sh = shards[s];
    cross_entropy_partial_sums(part_sum.data(), part_target.data(), local[s].data(),
                               row_max.data(), targets.data(), rows, sh.V_local, sh.valid,
                               sh.vocab_start);
    for (int64_t r = 0; r < rows; ++r) {
      sum_exp[r] += part_sum[r];
      target_logit[r] += part_target[r];
    }
  }
  CeOutput result{std::vector<float>(rows), std::vector<float>(rows * V, NAN)};
  cross_entropy_loss(result.loss.data(), row_max.data(), sum_exp.data(), target_logit.data(),
                     rows);
  for (size_t s = 0; s < shards.size(); ++s) {
    const Shard& sh = shards[s];
    std::vector<float> d(rows * sh.V_local, NAN);
    cross_entropy_backward(d.data(), local[s].data(), row_max.data(), sum_exp.data(),
                           targets.data(), dloss.data(), rows, sh.V_local, sh.valid,
                           sh.vocab_start);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < sh.V_local; ++c) {
        if (c >= sh.valid) {
          CHECK(d[r * sh.V_local + c] == 0.0f);
        } else {
          result.dlogits[r * V + sh.vocab_start + c] = d[r * sh.V_local + c];
        }
      }
    }
  }
  return result;
}

std::vector<double> loss_reference(const std::vector<double>& logits,
                                   const std::vector<int32_t>& targets, int64_t rows, int64_t V) {
  std::vector<double> loss(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const double* l = &logits[r * V];
    const double mx = *std::max_element(l, l + V);
    double sum = 0.0;
    for (int64_t c = 0; c < V; ++c) sum += std::exp(l[c] - mx);
    loss[r] = std::log(sum) + mx - l[targets[r]];
  }
  return loss;
}

std::vector<int32_t> random_targets(int64_t rows, int64_t V, uint32_t seed) {
  std::vector<int32_t> t(rows);
  const std::vector<float> u = random_floats(rows, seed, 0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) t[r] = std::min<int32_t>(V - 1, u[r] * V);
  return t;
}

}  // namespace

// One shard with 3 padding columns. Shapes: a single class, odd sizes, the GPT's 65-character
// vocabulary, and 768 rows (the GPT's batch) which takes the OpenMP path. Logits span [-4, 4].
TEST_CASE("kernel cross entropy matches a double reference", "[kernels][cross_entropy]") {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {7, 11}, {5, 65}, {768, 65}};
  for (auto [rows, V] : shapes) {
    CAPTURE(rows, V);
    const std::vector<float> logits = random_floats(rows * V, 50, -4.0f, 4.0f);
    const std::vector<int32_t> targets = random_targets(rows, V, 51);
    const std::vector<float> dloss = random_floats(rows, 52, 0.0f, 1.0f);
    const CeOutput got = run_sharded(logits, targets, dloss, rows, V, {{0, V + 3, V}});

    std::vector<double> ld = to_double(logits);
    const std::vector<double> dloss_d = to_double(dloss);
    // log-sum-exp of <= 65 O(1) terms in float: a few roundings of values ~4, ~1e-6.
    check_close("cross entropy loss", got.loss, loss_reference(ld, targets, rows, V),
                {1e-5, 1e-6});
    // L = sum_r dloss[r] loss[r]; each gradient is dloss (softmax - onehot), a few roundings.
    auto loss = [&] { return dot(loss_reference(ld, targets, rows, V), dloss_d); };
    check_gradient("cross entropy dlogits", ld, loss, got.dlogits, {1e-4, 1e-6});
  }
}

// 29 classes over 2 shards of 16 (the second with 3 padding columns), over 3 shards of 11,
// and over 3 shards of 10 where the last holds only padding (its row max is -inf).
TEST_CASE("kernel cross entropy composed across vocabulary shards equals the unsharded result",
          "[kernels][cross_entropy]") {
  const int64_t rows = 9;
  for (int64_t V : {29, 20}) {
    const std::vector<float> logits = random_floats(rows * V, 53, -4.0f, 4.0f);
    const std::vector<int32_t> targets = random_targets(rows, V, 54);
    const std::vector<float> dloss(rows, 1.0f / rows);
    const CeOutput whole = run_sharded(logits, targets, dloss, rows, V, {{0, V, V}});
    std::vector<std::vector<Shard>> layouts;
    if (V == 29) {
      layouts = {{{0, 16, 16}, {16, 16, 13}}, {{0, 11, 11}, {11, 11, 11}, {22, 11, 7}}};
    } else {
      layouts = {{{0, 10, 10}, {10, 10, 10}, {20, 10, 0}}};
    }
    for (const auto& shards : layouts) {
      CAPTURE(V, shards.size());
      const CeOutput split = run_sharded(logits, targets, dloss, rows, V, shards);
      // Only the order of the float max/sum reductions differs: a few ulp of O(1) values.
      check_close("sharded loss", split.loss, to_double(whole.loss), {1e-6, 1e-6});
      check_close("sharded dlogits", split.dlogits, to_double(whole.dlogits), {1e-5, 1e-8});
    }
  }
}

TEST_CASE("kernel cross entropy ignores padding columns and survives huge logits",
          "[kernels][cross_entropy]") {
  const int64_t rows = 6, V = 13;
  std::vector<float> logits = random_floats(rows * V, 55, -4.0f, 4.0f);
  const std::vector<int32_t> targets = random_targets(rows, V, 56);
  const std::vector<float> dloss(rows, 1.0f);
  const CeOutput packed = run_sharded(logits, targets, dloss, rows, V, {{0, V, V}});
  for (int64_t pad : {1, 16, 19}) {
    CAPTURE(pad);
    const CeOutput padded = run_sharded(logits, targets, dloss, rows, V, {{0, V + pad, V}});
    check_close("padded loss", padded.loss, to_double(packed.loss), {1e-6, 1e-7});
    check_close("padded dlogits", padded.dlogits, to_double(packed.dlogits), {1e-6, 1e-8});
  }
  // exp(1000) overflows float; the max subtraction must keep the loss finite and unchanged.
  // The shifted logits are rounded to float, so the reference uses those values; the loss is
  // formed as log(sum) + max - target around 1000, where a float ulp is 6e-5.
  for (float& l : logits) l += 1000.0f;
  const CeOutput shifted = run_sharded(logits, targets, dloss, rows, V, {{0, V, V}});
  check_close("shifted loss", shifted.loss, loss_reference(to_double(logits), targets, rows, V),
              {0.0, 1e-4});
}
