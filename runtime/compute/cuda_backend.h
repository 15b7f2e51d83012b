// The CUDA backend: every op of the Backend table on the kernels of kernels/cuda/ and the GEMM on
// cuBLASLt, all enqueued on the rank's one compute stream (CudaContext), never synchronising, so
// the host runs ahead of the device and reads back only what it must, once per step
// (read_to_host in runtime/device/device_memory.h). Inputs and outputs must be on the context's
// device. Precision: fp32 (TF32 only when the context allows it), and bf16 or fp16 GEMM inputs
// with fp32 accumulation.
#pragma once

#include <memory>

#include "runtime/compute/backend.h"
#include "runtime/device/cuda_context.h"

namespace tessera {

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(std::shared_ptr<CudaContext> context);
  std::string name() const override { return "cuda/cublaslt"; }
  Device device() const override { return context_->device(); }
  bool native_matmul(DType dtype) const override;
  std::string matmul_implementation(DType dtype) const override;
  CudaContext& context() const { return *context_; }

  void matmul(const MatmulArgs& args) override;
  void cast(const Tensor& src, Tensor& dst) override;
  void layernorm_forward(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                         const Tensor& bias) override;
  void layernorm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                          const Tensor& weight, const Tensor& mean, const Tensor& rstd) override;
  Tensor attention_forward(Tensor& out, const Tensor& qkv, int64_t B, int64_t T, int64_t H, int64_t D) override;
  void attention_backward(Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& saved, int64_t B,
                          int64_t T, int64_t H, int64_t D) override;
  void rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) override;
  void rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x, const Tensor& weight,
                        const Tensor& rstd) override;
  void rope_tables(Tensor& cos, Tensor& sin, int64_t T, int64_t head_dim, float base) override;
  void rope_forward(Tensor& x, const Tensor& cos, const Tensor& sin, int64_t T, int64_t heads) override;
  void rope_backward(Tensor& dx, const Tensor& cos, const Tensor& sin, int64_t T, int64_t heads) override;
  void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) override;
  void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& gate, const Tensor& up, const Tensor& dout) override;
  void gqa_pack_forward(Tensor& qkv, const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                        int64_t groups) override;
  void gqa_pack_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dqkv, int64_t heads,
                         int64_t groups) override;
  void gelu_forward(Tensor& out, const Tensor& x) override;
  void gelu_backward(Tensor& dx, const Tensor& x, const Tensor& dout) override;
  void relu_forward(Tensor& out, const Tensor& x) override;
  void relu_backward(Tensor& dx, const Tensor& x, const Tensor& dout) override;
  void bias_forward(Tensor& x, const Tensor& bias) override;
  void bias_backward(Tensor& dbias, const Tensor& dout) override;
  void bias_backward_cast(Tensor& dbias, Tensor& dout_c, const Tensor& dout) override;
  void gelu_backward_bias_cast(Tensor& dbias, Tensor& dx_c, const Tensor& x, const Tensor& dout) override;
  void residual_forward(Tensor& out, const Tensor& a, const Tensor& b) override;
  void accumulate(Tensor& acc, const Tensor& x) override;
  void token_embedding_forward(Tensor& out, const Tensor& tokens, const Tensor& wte, int64_t vocab_start) override;
  void token_embedding_backward(Tensor& dwte, const Tensor& dout, const Tensor& tokens, int64_t vocab_start) override;
  void position_embedding_forward(Tensor& x, const Tensor& wpe, int64_t B, int64_t T) override;
  void position_embedding_backward(Tensor& dwpe, const Tensor& dout, int64_t B, int64_t T) override;
  void cross_entropy_row_max(Tensor& row_max, const Tensor& logits, int64_t valid) override;
  void cross_entropy_partial_sums(Tensor& sum_exp, Tensor& target_logit, const Tensor& logits, const Tensor& row_max,
                                  const Tensor& targets, int64_t valid, int64_t vocab_start) override;
  void cross_entropy_loss(Tensor& loss, const Tensor& row_max, const Tensor& sum_exp,
                          const Tensor& target_logit) override;
  void cross_entropy_backward(Tensor& dlogits, const Tensor& logits, const Tensor& row_max, const Tensor& sum_exp,
                              const Tensor& targets, const Tensor& dloss, int64_t valid, int64_t vocab_start) override;
  std::vector<double> sum_squares(const std::vector<const Tensor*>& xs) override;
  void sum_squares_total(const std::vector<const Tensor*>& xs, Tensor& total) override;
  void scale(Tensor& x, float factor) override;
  void adamw_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) override;

 private:
  // Each of xs's sums of squares in double, left on the device (n doubles in 2n fp32 elements).
  Tensor sums_of_squares(const std::vector<const Tensor*>& xs);
  // Runs write(dst) with an F32 dst: `out` itself, or a scratch rounded into out's dtype.
  template <class Write>
  void write_rounded(Tensor& out, Write&& write);

  std::shared_ptr<CudaContext> context_;
};

}  // namespace tessera
