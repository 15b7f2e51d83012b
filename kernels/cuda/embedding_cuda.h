// CUDA token and position embeddings, the device twins of kernels/embedding.h. The token
// embedding supports a vocabulary shard [vocab_start, vocab_start + vocab_local): tokens outside
// it contribute zero (the caller all-reduces across the tensor-parallel group). Host launchers
// enqueue on the given stream and return without synchronising.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace tessera::kernels::cuda {

// out[r, :] = wte[tokens[r] - vocab_start, :] when the token is in the shard, else 0.
void token_embedding_forward(float* out, const int32_t* tokens, const float* wte, int64_t rows,
                             int64_t C, int64_t vocab_start, int64_t vocab_local,
                             cudaStream_t stream);
// dwte[tokens[r] - vocab_start, :] += dout[r, :] for tokens in the shard. Deterministic: the
// rows of one token are added in row order, as the CPU kernel does, so the result is the CPU's
// bit for bit and the same on every run.
void token_embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t rows,
                              int64_t C, int64_t vocab_start, int64_t vocab_local,
                              cudaStream_t stream);
// x[b, t, :] += wpe[t, :] for x of shape [B, T, C].
void position_embedding_forward(float* x, const float* wpe, int64_t B, int64_t T, int64_t C,
                                cudaStream_t stream);
// dwpe[t, :] += sum_b dout[b, t, :] (deterministic: no atomics).
void position_embedding_backward(float* dwpe, const float* dout, int64_t B, int64_t T, int64_t C,
                                 cudaStream_t stream);

}  // namespace tessera::kernels::cuda
