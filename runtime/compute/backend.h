// Backend: the table of operations layers run, one implementation per device and library
// (ggml's backend interface and llm.c's kernel/launcher split are the models). Layers never call
// kernels::cpu:: or kernels::cuda:: themselves; they call a Backend through their Compute
// (runtime/compute/compute.h), so a precision or a device is chosen in one place.
//
// Conventions (the kernels' own): activation gradients are written (=), parameter gradients
// accumulated (+=). Tensors are contiguous row-major; sizes come from the tensors where they
// can. Every op takes float32 tensors except `matmul`, whose inputs may be BF16/F16 (its output
// and accumulation are float32), `cast`, and the outputs that feed GEMMs (attention_forward,
// layernorm_forward, gelu_forward: see there), which may be written in the compute dtype.
#pragma once

#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

// The GEMM: c = op(a) op(b) (+ bias), or c += op(a) op(b) when accumulate. a: [M,K] ([K,M] when
// trans_a), b: [K,N] ([N,K] when trans_b), c: F32 [M,N], bias: F32 [N] or null.
struct MatmulArgs {
  const Tensor& a;
  bool trans_a;
  const Tensor& b;
  bool trans_b;
  Tensor& c;
  const Tensor* bias = nullptr;
  bool accumulate = false;
};

// One AdamW update's hyperparameters (kernels/adamw.h's arithmetic; step is 1-based).
struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay;
  int64_t step;
  float grad_scale = 1.0f;  // the gradient is used times this (the global-norm clip coefficient)
};

class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu/onednn", "cpu/eigen", "cuda/cublaslt": for logs and the op test harness.
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  // Whether matmul runs `dtype` inputs natively (not converted to fp32 first).
  virtual bool native_matmul(DType dtype) const = 0;
  // The implementation's own name for a matmul of this kind (e.g. "brg:avx512_core_bf16").
  virtual std::string matmul_implementation(DType dtype) const = 0;

  virtual void matmul(const MatmulArgs& args) = 0;
  // dst = src converted to dst's dtype (F32 <-> BF16/F16), same element count.
  virtual void cast(const Tensor& src, Tensor& dst) = 0;

  // LayerNorm over the last dimension of x [rows, C]; mean/rstd [rows] are saved for backward.
  // out may be F32 or the compute dtype (each value the fp32 result rounded once), as may
  // gelu_forward's: outputs that only feed a GEMM are written in its input dtype in one pass.
  virtual void layernorm_forward(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                                 const Tensor& bias) = 0;
  virtual void layernorm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                                  const Tensor& weight, const Tensor& mean, const Tensor& rstd) = 0;

  // Causal self-attention of qkv [B*T, 3*H*D] (q|k|v blocks, heads inside each) into out
  // [B*T, H*D]. Returns what backward needs besides qkv: its contents are the backend's (the CPU
  // keeps the probabilities, a flash-style kernel keeps the log-sum-exp per row). out's dtype
  // is the compute dtype, as a matmul's input dtypes are: F32 runs the fp32 reference; BF16/F16
  // multiply q, k, v and the probabilities rounded to it (backward: also dout and the score
  // gradient), with fp32 accumulation and an fp32 softmax; a backend that cannot multiply in
  // that dtype rounds those inputs and multiplies in fp32, which gives the same numbers.
  // dout and dqkv are F32 whatever the compute dtype.
  virtual Tensor attention_forward(Tensor& out, const Tensor& qkv, int64_t B, int64_t T, int64_t H, int64_t D) = 0;
  virtual void attention_backward(Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& saved, int64_t B,
                                  int64_t T, int64_t H, int64_t D) = 0;

  // RMSNorm (Llama) over the last dimension; rstd [rows] saved for backward, dweight accumulated.
  virtual void rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) = 0;
  virtual void rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x,
                                const Tensor& weight, const Tensor& rstd) = 0;
  // Rotary position embedding: cos/sin tables [T, D/2] for base theta, then x [B*T, heads*D]
  // rotated in place (forward) or by the inverse rotation (backward, its gradient).
  virtual void rope_tables(Tensor& cos, Tensor& sin, int64_t T, int64_t head_dim, float base) = 0;
  virtual void rope_forward(Tensor& x, const Tensor& cos, const Tensor& sin, int64_t T, int64_t heads) = 0;
  virtual void rope_backward(Tensor& dx, const Tensor& cos, const Tensor& sin, int64_t T, int64_t heads) = 0;
  // SwiGLU: out = silu(gate) * up; backward writes dgate and dup.
  virtual void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) = 0;
  virtual void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& gate, const Tensor& up,
                               const Tensor& dout) = 0;
  // Grouped-query attention: q [rows, H*D], k and v [rows, G*D] packed into the qkv layout of
  // attention_forward (each group's k/v repeated for its H/G heads); backward sums over them.
  virtual void gqa_pack_forward(Tensor& qkv, const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                                int64_t groups) = 0;
  virtual void gqa_pack_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dqkv, int64_t heads,
                                 int64_t groups) = 0;

  virtual void gelu_forward(Tensor& out, const Tensor& x) = 0;
  virtual void gelu_backward(Tensor& dx, const Tensor& x, const Tensor& dout) = 0;
  virtual void relu_forward(Tensor& out, const Tensor& x) = 0;
  virtual void relu_backward(Tensor& dx, const Tensor& x, const Tensor& dout) = 0;
  // x [rows, C] += bias [C]; dbias += column sums of dout.
  virtual void bias_forward(Tensor& x, const Tensor& bias) = 0;
  virtual void bias_backward(Tensor& dbias, const Tensor& dout) = 0;
  // bias_backward, and dout_c = dout in dout_c's (16-bit) dtype in the same pass: a Linear's
  // output gradient feeds its bias and, rounded, its two GEMMs.
  virtual void bias_backward_cast(Tensor& dbias, Tensor& dout_c, const Tensor& dout) = 0;
  // gelu_backward then bias_backward_cast of its result, which is never written in fp32: the
  // output gradient of a Linear that feeds a GELU (dx_c 16-bit, dbias accumulated).
  virtual void gelu_backward_bias_cast(Tensor& dbias, Tensor& dx_c, const Tensor& x, const Tensor& dout) = 0;
  // out = a + b; acc += x.
  virtual void residual_forward(Tensor& out, const Tensor& a, const Tensor& b) = 0;
  virtual void accumulate(Tensor& acc, const Tensor& x) = 0;

  // Rows of the vocabulary shard [vocab_start, vocab_start + wte.dim(0)) of wte for the I32
  // tokens [rows] (zero rows for tokens outside the shard); backward accumulates into dwte.
  virtual void token_embedding_forward(Tensor& out, const Tensor& tokens, const Tensor& wte, int64_t vocab_start) = 0;
  virtual void token_embedding_backward(Tensor& dwte, const Tensor& dout, const Tensor& tokens,
                                        int64_t vocab_start) = 0;
  // x [B*T, C] += wpe[t] for each of the B sequences of T positions.
  virtual void position_embedding_forward(Tensor& x, const Tensor& wpe, int64_t B, int64_t T) = 0;
  virtual void position_embedding_backward(Tensor& dwpe, const Tensor& dout, int64_t B, int64_t T) = 0;

  // Vocabulary-parallel softmax cross-entropy in pieces (the tp group reduces between them):
  // logits [rows, V_local] of which the first `valid` columns are real vocabulary.
  virtual void cross_entropy_row_max(Tensor& row_max, const Tensor& logits, int64_t valid) = 0;
  virtual void cross_entropy_partial_sums(Tensor& sum_exp, Tensor& target_logit, const Tensor& logits,
                                          const Tensor& row_max, const Tensor& targets, int64_t valid,
                                          int64_t vocab_start) = 0;
  virtual void cross_entropy_loss(Tensor& loss, const Tensor& row_max, const Tensor& sum_exp,
                                  const Tensor& target_logit) = 0;
  virtual void cross_entropy_backward(Tensor& dlogits, const Tensor& logits, const Tensor& row_max,
                                      const Tensor& sum_exp, const Tensor& targets, const Tensor& dloss,
                                      int64_t valid, int64_t vocab_start) = 0;

  // The optimizer's ops, on fp32 master weights, gradients and moments.
  // The sum of squares of each tensor of xs, each accumulated in double, returned to the host in
  // order (on a GPU one host wait for all of them): the gradient norm's partial sums.
  virtual std::vector<double> sum_squares(const std::vector<const Tensor*>& xs) = 0;
  // Those sums added in order and rounded to fp32 into total ([1] on this backend's device), with
  // no host read: the squared gradient norm, reduced over ranks on the device and read back once
  // per step together with the loss.
  virtual void sum_squares_total(const std::vector<const Tensor*>& xs, Tensor& total) = 0;
  // x *= factor (gradient clipping, the fp16 unscale).
  virtual void scale(Tensor& x, float factor) = 0;
  // param -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * param), moments updated first.
  virtual void adamw_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) = 0;
};

}  // namespace tessera
