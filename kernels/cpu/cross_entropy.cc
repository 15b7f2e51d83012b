// CPU softmax cross-entropy in pieces that compose across vocabulary shards.
#include "kernels/cross_entropy.h"

#include <cmath>
#include <limits>

#include "kernels/cpu/common.h"
#include "core/error.h"

namespace tessera::kernels::cpu {
namespace {

using detail::ConstArrayMap;

// Each logit costs an exponential (~10 flops) in the passes that touch it.
template <class Fn>
void for_rows(int64_t rows, int64_t valid, Fn&& fn) {
  detail::parallel_ranges(
      rows, detail::threads_for(rows * valid * 10),
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) fn(r);
      },
      1);
}

void check_shard(int64_t V_local, int64_t valid) {
  TESSERA_CHECK(valid >= 0 && valid <= V_local,
                "cross_entropy: valid columns {} outside [0, V_local={}]", valid, V_local);
}

}  // namespace

void cross_entropy_row_max(float* row_max, const float* logits, int64_t rows, int64_t V_local,
                           int64_t valid) {
  check_shard(V_local, valid);
  for_rows(rows, valid, [&](int64_t r) {
    row_max[r] = valid > 0 ? ConstArrayMap(logits + r * V_local, valid).maxCoeff()
                           : -std::numeric_limits<float>::infinity();
  });
}

void cross_entropy_partial_sums(float* sum_exp, float* target_logit, const float* logits,
                                const float* row_max, const int32_t* targets, int64_t rows,
                                int64_t V_local, int64_t valid, int64_t vocab_start) {
  check_shard(V_local, valid);
  for_rows(rows, valid, [&](int64_t r) {
    const ConstArrayMap l(logits + r * V_local, valid);
    sum_exp[r] = valid > 0 ? (l - row_max[r]).exp().sum() : 0.0f;
    const int64_t t = targets[r] - vocab_start;
    target_logit[r] = (t >= 0 && t < valid) ? l[t] : 0.0f;
  });
}

void cross_entropy_loss(float* loss, const float* row_max, const float* sum_exp,
                        const float* target_logit, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) loss[r] = std::log(sum_exp[r]) + row_max[r] - target_logit[r];
}

void cross_entropy_backward(float* dlogits, const float* logits, const float* row_max,
                            const float* sum_exp, const int32_t* targets, const float* dloss,
                            int64_t rows, int64_t V_local, int64_t valid, int64_t vocab_start) {
  check_shard(V_local, valid);
  for_rows(rows, valid, [&](int64_t r) {
    float* d = dlogits + r * V_local;
    detail::ArrayMap(d, valid) =
        (ConstArrayMap(logits + r * V_local, valid) - row_max[r]).exp() * (dloss[r] / sum_exp[r]);
    detail::ArrayMap(d + valid, V_local - valid).setZero();
    const int64_t t = targets[r] - vocab_start;
    if (t >= 0 && t < valid) d[t] -= dloss[r];
  });
}

}  // namespace tessera::kernels::cpu
