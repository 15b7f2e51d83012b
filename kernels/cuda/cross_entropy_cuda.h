// CUDA softmax cross-entropy in pieces, the device twins of kernels/cross_entropy.h: the caller
// all-reduces the row max (max) and the sums of exponentials and target logits (sum) between
// the pieces when the vocabulary is sharded over tensor-parallel ranks. Columns at or beyond
// `valid` (vocabulary padding) are ignored. logits are [rows, V_local] for the vocabulary shard
// [vocab_start, vocab_start + V_local). Host launchers enqueue on the given stream and return
// without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

// row_max[r] = max over valid columns of logits[r, :] (-inf when the shard has none).
void cross_entropy_row_max(float* row_max, const float* logits, int64_t rows, int64_t V_local,
                           int64_t valid, cudaStream_t stream);
// sum_exp[r] = sum over valid columns exp(logits[r, c] - row_max[r]);
// target_logit[r] = logits[r, targets[r] - vocab_start] if in the shard, else 0.
void cross_entropy_partial_sums(float* sum_exp, float* target_logit, const float* logits,
                                const float* row_max, const int32_t* targets, int64_t rows,
                                int64_t V_local, int64_t valid, int64_t vocab_start,
                                cudaStream_t stream);
// loss[r] = log(sum_exp[r]) + row_max[r] - target_logit[r].
void cross_entropy_loss(float* loss, const float* row_max, const float* sum_exp,
                        const float* target_logit, int64_t rows, cudaStream_t stream);
// dlogits[r, c] = dloss[r] * (softmax[r, c] - onehot(targets[r])[c]) for valid columns, 0 for
// padding columns (written; may alias logits). dloss is a per-row scale.
void cross_entropy_backward(float* dlogits, const float* logits, const float* row_max,
                            const float* sum_exp, const int32_t* targets, const float* dloss,
                            int64_t rows, int64_t V_local, int64_t valid, int64_t vocab_start,
                            cudaStream_t stream);

}  // namespace tessera::kernels::cuda
