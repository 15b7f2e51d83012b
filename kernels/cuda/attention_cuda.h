// CUDA causal multi-head self-attention core, the device twin of kernels/attention.h:
// softmax(Q K^T / sqrt(d)) V with a causal mask. qkv is [B, T, 3 * H * D] laid out as
// (q for all heads | k for all heads | v for all heads), each head contiguous; out is
// [B, T, H * D], as on the CPU.
//
// A flash-attention style kernel: tiles of queries stream over tiles of keys with an online
// softmax, so the T x T probabilities are never stored. Where the CPU kernel saves probs
// [B, H, T, T], this one saves lse [B, H, T], the log-sum-exp of each row's scaled scores; the
// backward pass recomputes the probabilities tile by tile from it. Extra memory: O(B H T).
// Host launchers enqueue on the given stream and return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

// The largest head size the kernels take (their tiles live in shared memory).
constexpr int64_t kAttentionMaxHeadDim = 256;

// out written; lse[b, h, t] = log sum_{s <= t} exp(q_t . k_s / sqrt(D)) saved for backward.
void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t T, int64_t H,
                       int64_t D, cudaStream_t stream);
// dqkv written from dout, using the saved qkv, the forward output and lse. Deterministic: no
// atomics (one kernel for dQ over query tiles, one for dK and dV over key tiles).
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, int64_t B, int64_t T, int64_t H, int64_t D,
                        cudaStream_t stream);

}  // namespace tessera::kernels::cuda
