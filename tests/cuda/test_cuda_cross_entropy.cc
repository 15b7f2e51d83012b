// [cuda] tests of the cross-entropy pieces against the CPU twins, on a vocabulary shard with
// padding columns, composed as one rank would compose them.
//
// Tolerances: the row max is exact (max never rounds) and the target logit a copy. The sums of
// exponentials add expf (GPU) or Eigen's vectorised exp (CPU) results, each within a few ulp,
// in different orders: 1e-5 normalised. Each later piece is fed the CPU's outputs of the
// earlier ones, so it is compared alone: the loss is logf against std::log plus two float
// operations (1e-6); the gradient is one exp per element (1e-5 for the exp's few ulp).
#include <cmath>
#include <limits>
#include <tuple>

#include "kernels/cross_entropy.h"
#include "kernels/cuda/cross_entropy_cuda.h"
#include "tests/cuda/cuda_test_util.h"

namespace cpu = tessera::kernels::cpu;
namespace gpu = tessera::kernels::cuda;
using namespace tessera::cuda_testing;

TEST_CASE("cuda cross-entropy pieces match the cpu kernels", "[cuda][cross_entropy]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  // (rows, V_local, valid, vocab_start, vocab): one column; a shard with padding whose targets
  // fall before, inside and after it; GPT-2's padded vocabulary on one rank.
  const std::tuple<int64_t, int64_t, int64_t, int64_t, int32_t> cases[] = {
      {1, 1, 1, 0, 1}, {37, 129, 100, 50, 200}, {64, 50304, 50257, 0, 50257}};
  for (const auto& [rows, V, valid, start, vocab] : cases) {
    CAPTURE(rows, V, valid, start, vocab);
    const auto logits = random_floats(rows * V, 80, -8.0f, 8.0f);
    const auto targets = random_ints(rows, 81, 0, vocab - 1);
    const auto dloss = random_floats(rows, 82, 0.0f, 1.0f);
    std::vector<float> row_max(rows), sum_exp(rows), target_logit(rows), loss(rows),
        dlogits(rows * V);
    cpu::cross_entropy_row_max(row_max.data(), logits.data(), rows, V, valid);
    cpu::cross_entropy_partial_sums(sum_exp.data(), target_logit.data(), logits.data(),
                                    row_max.data(), targets.data(), rows, V, valid, start);
    cpu::cross_entropy_loss(loss.data(), row_max.data(), sum_exp.data(), target_logit.data(), rows);
    cpu::cross_entropy_backward(dlogits.data(), logits.data(), row_max.data(), sum_exp.data(),
                                targets.data(), dloss.data(), rows, V, valid, start);

    const DeviceArray<float> logits_d(logits), dloss_d(dloss);
    const DeviceArray<int32_t> targets_d(targets);
    // The CPU's intermediate results, so each piece is tested alone.
    const DeviceArray<float> row_max_in(row_max), sum_exp_in(sum_exp), target_in(target_logit);
    auto row_max_d = DeviceArray<float>::poisoned(rows), sum_exp_d = DeviceArray<float>::poisoned(rows),
         target_d = DeviceArray<float>::poisoned(rows), loss_d = DeviceArray<float>::poisoned(rows),
         dlogits_d = DeviceArray<float>::poisoned(rows * V);
    gpu::cross_entropy_row_max(row_max_d.get(), logits_d.get(), rows, V, valid, stream.get());
    gpu::cross_entropy_partial_sums(sum_exp_d.get(), target_d.get(), logits_d.get(),
                                    row_max_in.get(), targets_d.get(), rows, V, valid, start,
                                    stream.get());
    gpu::cross_entropy_loss(loss_d.get(), row_max_in.get(), sum_exp_in.get(), target_in.get(), rows,
                            stream.get());
    gpu::cross_entropy_backward(dlogits_d.get(), logits_d.get(), row_max_in.get(), sum_exp_in.get(),
                                targets_d.get(), dloss_d.get(), rows, V, valid, start,
                                stream.get());
    stream.sync();
    check_normalised("row max", row_max_d.to_host(), row_max, 0.0);
    check_normalised("sum exp", sum_exp_d.to_host(), sum_exp, 1e-5);
    check_normalised("target logit", target_d.to_host(), target_logit, 0.0);
    check_normalised("loss", loss_d.to_host(), loss, 1e-6);
    // Padding columns must be written as 0, which the NaN poison checks.
    check_normalised("dlogits", dlogits_d.to_host(), dlogits, 1e-5);
  }
}

TEST_CASE("cuda cross-entropy on a shard without valid columns", "[cuda][cross_entropy]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  // The last tensor-parallel rank of a padded vocabulary can hold only padding.
  const int64_t rows = 5, V = 8;
  const auto logits = random_floats(rows * V, 83);
  const std::vector<int32_t> targets(rows, 3);
  const DeviceArray<float> logits_d(logits);
  const DeviceArray<int32_t> targets_d(targets);
  auto row_max_d = DeviceArray<float>::poisoned(rows), sum_exp_d = DeviceArray<float>::poisoned(rows),
       target_d = DeviceArray<float>::poisoned(rows);
  gpu::cross_entropy_row_max(row_max_d.get(), logits_d.get(), rows, V, 0, stream.get());
  gpu::cross_entropy_partial_sums(sum_exp_d.get(), target_d.get(), logits_d.get(), row_max_d.get(),
                                  targets_d.get(), rows, V, 0, 100, stream.get());
  stream.sync();
  for (float m : row_max_d.to_host()) CHECK(m == -std::numeric_limits<float>::infinity());
  for (float s : sum_exp_d.to_host()) CHECK(s == 0.0f);
  for (float t : target_d.to_host()) CHECK(t == 0.0f);
}
