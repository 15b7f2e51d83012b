// Causal multi-head self-attention with bf16 products through oneDNN: the mixed-precision
// twin of kernels/attention.h (whose fp32 Eigen kernel stays the reference). The products of
// every sequence (QK^T and PV forward; dV, dP, dQ, dK backward) run per block of query rows,
// each as one 4-D bf16 matmul over all heads with fp32 accumulation, against only the keys up to
// the block's last row; softmax and its gradient run in fp32.
//
// Layouts are those of kernels/attention.h: qkv [B*T, 3*H*D] (q | k | v blocks, heads inside
// each block), out [B*T, H*D]. oneDNN 2.6 runs its fast brgemm kernels on a [B, T, H, D] view
// (a permutation of a dense tensor) but falls back to its several times slower gemm:jit on the
// q/k/v blocks of qkv, whose rows have a gap. So forward first splits qkv into three dense
// [B*T, H*D] bf16 blocks — one pass that is also the fp32 -> bf16 cast — and backward joins
// dq, dk, dv into dqkv at the end. The output is written by the PV product itself, in fp32 or
// bf16 (no separate cast).
#pragma once

#include <cstdint>

namespace tessera::kernels::onednn {

// What backward needs, bf16 bit patterns: q, k, v [3][B*T][H*D] and, per sequence, the
// probabilities of each row block [H][rows][keys] (0 above the diagonal): about half of T x T.
int64_t attention_saved_elements(int64_t B, int64_t T, int64_t H, int64_t D);

// Keeps the primitives of each shape (creating one costs ~100 us). Safe to call from several
// threads.
class Attention {
 public:
  Attention();
  ~Attention();
  Attention(const Attention&) = delete;
  Attention& operator=(const Attention&) = delete;

  // out [B*T, H*D]: float32, or bf16 bit patterns when out_bf16; qkv float32; saved as above.
  void forward(void* out, bool out_bf16, uint16_t* saved, const float* qkv, int64_t B, int64_t T, int64_t H,
               int64_t D);
  // dqkv [B*T, 3*H*D] float32, written from dout [B*T, H*D] float32 and forward's saved state.
  void backward(float* dqkv, const float* dout, const uint16_t* saved, int64_t B, int64_t T, int64_t H, int64_t D);

 private:
  struct State;
  State* state_;
};

}  // namespace tessera::kernels::onednn
