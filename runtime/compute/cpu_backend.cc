// CpuBackend: Tensor-level wrappers over the CPU kernels, and the choice of GEMM library.
#include "runtime/compute/cpu_backend.h"

#include <algorithm>

#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/bias.h"
#include "kernels/cast.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gelu.h"
#include "kernels/gqa.h"
#include "kernels/grad_clip.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/onednn_attention.h"
#include "kernels/onednn_matmul.h"
#include "kernels/relu.h"
#include "kernels/residual.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace tessera {
namespace {

namespace k = kernels::cpu;
namespace dnnl = kernels::onednn;

dnnl::ElemType elem_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return dnnl::ElemType::F32;
    case DType::BF16: return dnnl::ElemType::BF16;
    case DType::F16: return dnnl::ElemType::F16;
    default: break;
  }
  TESSERA_CHECK(false, "matmul: unsupported input dtype {}", dtype_name(dtype));
  return dnnl::ElemType::F32;
}

// The 16-bit format of an op output written directly in the compute dtype.
k::Half half_format(DType dtype) {
  TESSERA_CHECK(dtype == DType::BF16 || dtype == DType::F16, "output dtype {}: must be F32, BF16 or F16",
                dtype_name(dtype));
  return dtype == DType::BF16 ? k::Half::BF16 : k::Half::F16;
}

// Rows and columns of a tensor seen as a matrix: [d0 * ... * d(n-2), d(n-1)].
int64_t cols_of(const Tensor& t) { return t.ndim() == 0 ? 1 : t.dim(t.ndim() - 1); }
int64_t rows_of(const Tensor& t) { return t.numel() / std::max<int64_t>(cols_of(t), 1); }

// A 1024^2 x 1024 product: large enough to reach the library's steady rate.
dnnl::MatmulShape probe_shape(DType dtype) {
  dnnl::MatmulShape s;
  s.M = s.N = s.K = s.lda = s.ldb = s.ldc = 1024;
  s.type = elem_type(dtype);
  return s;
}

}  // namespace

CpuBackend::CpuBackend(CpuGemm gemm) : gemm_(gemm) {
  if (gemm_ == CpuGemm::OneDnn) {
    onednn_ = std::make_unique<dnnl::Matmul>();
    attention_ = std::make_unique<dnnl::Attention>();
  }
}
CpuBackend::~CpuBackend() = default;

std::string CpuBackend::name() const { return gemm_ == CpuGemm::OneDnn ? "cpu/onednn" : "cpu/eigen"; }

bool CpuBackend::native_matmul(DType dtype) const {
  if (dtype == DType::F32) return true;
  return gemm_ == CpuGemm::OneDnn && dtype == DType::BF16 && dnnl::native_bf16();
}

std::string CpuBackend::matmul_implementation(DType dtype) const {
  if (gemm_ == CpuGemm::Eigen) return "eigen";
  if (dtype == DType::F16) return "f16 widened to f32, " + onednn_->implementation_name(probe_shape(DType::F32));
  return onednn_->implementation_name(probe_shape(dtype));
}

void CpuBackend::matmul(const MatmulArgs& m) {
  TESSERA_CHECK(m.a.dtype() == m.b.dtype(), "matmul: input dtypes differ ({} and {})", dtype_name(m.a.dtype()),
                dtype_name(m.b.dtype()));
  TESSERA_CHECK(m.c.dtype() == DType::F32, "matmul: the output must be F32");
  const int64_t M = m.trans_a ? cols_of(m.a) : rows_of(m.a), K = m.trans_a ? rows_of(m.a) : cols_of(m.a);
  const int64_t N = m.trans_b ? rows_of(m.b) : cols_of(m.b);
  TESSERA_CHECK((m.trans_b ? cols_of(m.b) : rows_of(m.b)) == K && rows_of(m.c) == M && cols_of(m.c) == N,
                "matmul: shapes {} x {} -> {} do not match", shape_string(m.a.shape()), shape_string(m.b.shape()),
                shape_string(m.c.shape()));
  // 16-bit inputs that the library cannot multiply (any on Eigen, fp16 on this oneDNN) are
  // widened exactly to fp32: the same numbers as a 16-bit product with fp32 accumulation.
  if (m.a.dtype() != DType::F32 && (gemm_ == CpuGemm::Eigen || m.a.dtype() == DType::F16)) {
    Tensor a = Tensor::empty(m.a.shape()), b = Tensor::empty(m.b.shape());
    cast(m.a, a);
    cast(m.b, b);
    return matmul({a, m.trans_a, b, m.trans_b, m.c, m.bias, m.accumulate});
  }
  if (gemm_ == CpuGemm::Eigen) return eigen_matmul(m);
  dnnl::MatmulShape s;
  s.M = M, s.N = N, s.K = K, s.trans_a = m.trans_a, s.trans_b = m.trans_b;
  s.lda = cols_of(m.a), s.ldb = cols_of(m.b), s.ldc = N;
  s.type = elem_type(m.a.dtype());
  s.has_bias = m.bias != nullptr;
  s.accumulate = m.accumulate;
  onednn_->run(s, m.a.data<void>(), m.b.data<void>(), m.bias ? m.bias->f32() : nullptr, m.c.f32());
}

void CpuBackend::eigen_matmul(const MatmulArgs& m) {
  const int64_t M = rows_of(m.c), N = cols_of(m.c), K = m.trans_a ? rows_of(m.a) : cols_of(m.a);
  k::gemm(m.trans_a, m.trans_b, M, N, K, 1.f, m.a.f32(), cols_of(m.a), m.b.f32(), cols_of(m.b),
          m.accumulate ? 1.f : 0.f, m.c.f32(), N);
  if (m.bias != nullptr) k::bias_forward(m.c.f32(), m.bias->f32(), M, N);
}

void CpuBackend::cast(const Tensor& src, Tensor& dst) {
  TESSERA_CHECK(src.numel() == dst.numel(), "cast: {} elements into {}", src.numel(), dst.numel());
  const DType from = src.dtype(), to = dst.dtype();
  const int64_t n = src.numel();
  if (from == to) return dst.copy_from(src);
  if (from == DType::F32 && to == DType::BF16) return k::cast_f32_to_bf16(dst.data<uint16_t>(), src.f32(), n);
  if (from == DType::BF16 && to == DType::F32) return k::cast_bf16_to_f32(dst.f32(), src.data<uint16_t>(), n);
  if (from == DType::F32 && to == DType::F16) return k::cast_f32_to_f16(dst.data<uint16_t>(), src.f32(), n);
  if (from == DType::F16 && to == DType::F32) return k::cast_f16_to_f32(dst.f32(), src.data<uint16_t>(), n);
  TESSERA_CHECK(false, "cast: {} to {} is not supported", dtype_name(from), dtype_name(to));
}

void CpuBackend::layernorm_forward(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                                   const Tensor& bias) {
  if (out.dtype() != DType::F32) {
    return k::layernorm_forward(out.data<uint16_t>(), half_format(out.dtype()), mean.f32(), rstd.f32(), x.f32(),
                                weight.f32(), bias.f32(), rows_of(x), cols_of(x));
  }
  k::layernorm_forward(out.f32(), mean.f32(), rstd.f32(), x.f32(), weight.f32(), bias.f32(), rows_of(x), cols_of(x));
}

void CpuBackend::layernorm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                                    const Tensor& weight, const Tensor& mean, const Tensor& rstd) {
  k::layernorm_backward(dx.f32(), dweight.f32(), dbias.f32(), dout.f32(), x.f32(), weight.f32(), mean.f32(),
                        rstd.f32(), rows_of(x), cols_of(x));
}

// bf16 on oneDNN: batched bf16 products (kernels/onednn_attention.h), saving packed q, k, v and
// the probabilities in bf16. fp32: the Eigen reference, saving the fp32 probabilities. A 16-bit
// dtype this backend cannot multiply (fp16: oneDNN 2.6 has fp16 matmuls only with AVX512-FP16;
// either format on Eigen) runs the fp32 kernel on q, k, v and P rounded to it (dout and dS too,
// backward): the numbers of a 16-bit product with fp32 accumulation. It saves the rounded qkv
// and probabilities in that dtype ([B*T*3*H*D | B*H*T*T]): both are exact there.
Tensor CpuBackend::attention_forward(Tensor& out, const Tensor& qkv, int64_t B, int64_t T, int64_t H, int64_t D) {
  TESSERA_CHECK(qkv.dtype() == DType::F32, "attention: qkv must be F32");
  if (out.dtype() == DType::BF16 && gemm_ == CpuGemm::OneDnn) {
    Tensor saved = Tensor::empty({dnnl::attention_saved_elements(B, T, H, D)}, DType::BF16);
    attention_->forward(out.data<void>(), true, saved.data<uint16_t>(), qkv.f32(), B, T, H, D);
    return saved;
  }
  if (out.dtype() == DType::F32) {
    Tensor probs = Tensor::empty({B, H, T, T});
    k::attention_forward(out.f32(), probs.f32(), qkv.f32(), B, T, H, D);
    return probs;
  }
  const k::Half format = half_format(out.dtype());
  const int64_t n = qkv.numel();
  Tensor state = Tensor::empty({n + B * H * T * T}), out32 = Tensor::empty(out.shape());
  std::copy(qkv.f32(), qkv.f32() + n, state.f32());
  k::round_to_half(format, state.f32(), n);
  k::attention_forward(out32.f32(), state.f32() + n, state.f32(), B, T, H, D, format);
  cast(out32, out);
  Tensor saved = Tensor::empty(state.shape(), out.dtype());
  cast(state, saved);
  return saved;
}

void CpuBackend::attention_backward(Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& saved,
                                    int64_t B, int64_t T, int64_t H, int64_t D) {
  if (saved.dtype() == DType::F32) {
    return k::attention_backward(dqkv.f32(), dout.f32(), qkv.f32(), saved.f32(), B, T, H, D);
  }
  if (saved.dtype() == DType::BF16 && gemm_ == CpuGemm::OneDnn) {
    TESSERA_CHECK(saved.numel() == dnnl::attention_saved_elements(B, T, H, D) && attention_ != nullptr,
                  "attention_backward: the saved state is not this backend's bf16 state for these sizes");
    return attention_->backward(dqkv.f32(), dout.f32(), saved.data<uint16_t>(), B, T, H, D);
  }
  const int64_t n = qkv.numel();
  TESSERA_CHECK(saved.numel() == n + B * H * T * T,
                "attention_backward: the saved state is not this backend's rounded state for these sizes");
  Tensor state = Tensor::empty(saved.shape());
  cast(saved, state);
  k::attention_backward(dqkv.f32(), dout.f32(), state.f32(), state.f32() + n, B, T, H, D,
                        half_format(saved.dtype()));
}

void CpuBackend::rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) {
  k::rmsnorm_forward(out.f32(), rstd.f32(), x.f32(), weight.f32(), rows_of(x), cols_of(x), eps);
}
void CpuBackend::rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x,
                                  const Tensor& weight, const Tensor& rstd) {
  k::rmsnorm_backward(dx.f32(), dweight.f32(), dout.f32(), x.f32(), weight.f32(), rstd.f32(), rows_of(x), cols_of(x));
}
void CpuBackend::rope_tables(Tensor& cos, Tensor& sin, int64_t T, int64_t head_dim, float base) {
  k::rope_tables(cos.f32(), sin.f32(), T, head_dim, base);
}
// The tables are [T, head_dim / 2]: their width gives the head dimension.
void CpuBackend::rope_forward(Tensor& x, const Tensor& cos, const Tensor& sin, int64_t T, int64_t heads) {
  k::rope_forward(x.f32(), x.f32(), cos.f32(), sin.f32(), rows_of(x), T, heads, 2 * cols_of(cos));
}
void CpuBackend::rope_backward(Tensor& dx, const Tensor& cos, const Tensor& sin, int64_t T, int64_t heads) {
  k::rope_backward(dx.f32(), dx.f32(), cos.f32(), sin.f32(), rows_of(dx), T, heads, 2 * cols_of(cos));
}
void CpuBackend::swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) {
  k::swiglu_forward(out.f32(), gate.f32(), up.f32(), gate.numel());
}
void CpuBackend::swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& gate, const Tensor& up,
                                 const Tensor& dout) {
  k::swiglu_backward(dgate.f32(), dup.f32(), gate.f32(), up.f32(), dout.f32(), gate.numel());
}
void CpuBackend::gqa_pack_forward(Tensor& qkv, const Tensor& q, const Tensor& k_, const Tensor& v, int64_t heads,
                                  int64_t groups) {
  k::gqa_pack_forward(qkv.f32(), q.f32(), k_.f32(), v.f32(), rows_of(q), heads, groups, cols_of(q) / heads);
}
void CpuBackend::gqa_pack_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dqkv, int64_t heads,
                                   int64_t groups) {
  k::gqa_pack_backward(dq.f32(), dk.f32(), dv.f32(), dqkv.f32(), rows_of(dq), heads, groups, cols_of(dq) / heads);
}

void CpuBackend::gelu_forward(Tensor& out, const Tensor& x) {
  if (out.dtype() != DType::F32) return k::gelu_forward(out.data<uint16_t>(), half_format(out.dtype()), x.f32(), x.numel());
  k::gelu_forward(out.f32(), x.f32(), x.numel());
}
void CpuBackend::gelu_backward(Tensor& dx, const Tensor& x, const Tensor& dout) {
  k::gelu_backward(dx.f32(), x.f32(), dout.f32(), x.numel());
}
void CpuBackend::relu_forward(Tensor& out, const Tensor& x) { k::relu_forward(out.f32(), x.f32(), x.numel()); }
void CpuBackend::relu_backward(Tensor& dx, const Tensor& x, const Tensor& dout) {
  k::relu_backward(dx.f32(), x.f32(), dout.f32(), x.numel());
}
void CpuBackend::bias_forward(Tensor& x, const Tensor& bias) {
  k::bias_forward(x.f32(), bias.f32(), rows_of(x), cols_of(x));
}
void CpuBackend::bias_backward(Tensor& dbias, const Tensor& dout) {
  k::bias_backward(dbias.f32(), dout.f32(), rows_of(dout), cols_of(dout));
}
void CpuBackend::bias_backward_cast(Tensor& dbias, Tensor& dout_c, const Tensor& dout) {
  TESSERA_CHECK(dout_c.numel() == dout.numel(), "bias_backward_cast: {} elements into {}", dout.numel(),
                dout_c.numel());
  k::bias_backward(dbias.f32(), dout_c.data<uint16_t>(), half_format(dout_c.dtype()), dout.f32(), rows_of(dout),
                   cols_of(dout));
}
void CpuBackend::gelu_backward_bias_cast(Tensor& dbias, Tensor& dx_c, const Tensor& x, const Tensor& dout) {
  TESSERA_CHECK(dx_c.numel() == dout.numel() && x.numel() == dout.numel(),
                "gelu_backward_bias_cast: x {} and dout {} elements into {}", x.numel(), dout.numel(), dx_c.numel());
  k::gelu_backward_bias(dbias.f32(), dx_c.data<uint16_t>(), half_format(dx_c.dtype()), x.f32(), dout.f32(),
                        rows_of(dout), cols_of(dout));
}
void CpuBackend::residual_forward(Tensor& out, const Tensor& a, const Tensor& b) {
  k::residual_forward(out.f32(), a.f32(), b.f32(), a.numel());
}
void CpuBackend::accumulate(Tensor& acc, const Tensor& x) { k::accumulate(acc.f32(), x.f32(), x.numel()); }

void CpuBackend::token_embedding_forward(Tensor& out, const Tensor& tokens, const Tensor& wte, int64_t vocab_start) {
  k::token_embedding_forward(out.f32(), tokens.i32(), wte.f32(), tokens.numel(), cols_of(wte), vocab_start,
                             wte.dim(0));
}
void CpuBackend::token_embedding_backward(Tensor& dwte, const Tensor& dout, const Tensor& tokens,
                                          int64_t vocab_start) {
  k::token_embedding_backward(dwte.f32(), dout.f32(), tokens.i32(), tokens.numel(), cols_of(dwte), vocab_start,
                              dwte.dim(0));
}
void CpuBackend::position_embedding_forward(Tensor& x, const Tensor& wpe, int64_t B, int64_t T) {
  k::position_embedding_forward(x.f32(), wpe.f32(), B, T, cols_of(wpe));
}
void CpuBackend::position_embedding_backward(Tensor& dwpe, const Tensor& dout, int64_t B, int64_t T) {
  k::position_embedding_backward(dwpe.f32(), dout.f32(), B, T, cols_of(dwpe));
}

void CpuBackend::cross_entropy_row_max(Tensor& row_max, const Tensor& logits, int64_t valid) {
  k::cross_entropy_row_max(row_max.f32(), logits.f32(), rows_of(logits), cols_of(logits), valid);
}
void CpuBackend::cross_entropy_partial_sums(Tensor& sum_exp, Tensor& target_logit, const Tensor& logits,
                                            const Tensor& row_max, const Tensor& targets, int64_t valid,
                                            int64_t vocab_start) {
  k::cross_entropy_partial_sums(sum_exp.f32(), target_logit.f32(), logits.f32(), row_max.f32(), targets.i32(),
                                rows_of(logits), cols_of(logits), valid, vocab_start);
}
void CpuBackend::cross_entropy_loss(Tensor& loss, const Tensor& row_max, const Tensor& sum_exp,
                                    const Tensor& target_logit) {
  k::cross_entropy_loss(loss.f32(), row_max.f32(), sum_exp.f32(), target_logit.f32(), row_max.numel());
}
void CpuBackend::cross_entropy_backward(Tensor& dlogits, const Tensor& logits, const Tensor& row_max,
                                        const Tensor& sum_exp, const Tensor& targets, const Tensor& dloss,
                                        int64_t valid, int64_t vocab_start) {
  k::cross_entropy_backward(dlogits.f32(), logits.f32(), row_max.f32(), sum_exp.f32(), targets.i32(), dloss.f32(),
                            rows_of(logits), cols_of(logits), valid, vocab_start);
}


std::vector<double> CpuBackend::sum_squares(const std::vector<const Tensor*>& xs) {
  std::vector<double> sums;
  sums.reserve(xs.size());
  for (const Tensor* x : xs) sums.push_back(k::sum_squares(x->f32(), x->numel()));
  return sums;
}
void CpuBackend::sum_squares_total(const std::vector<const Tensor*>& xs, Tensor& total) {
  double sum = 0;
  for (double s : sum_squares(xs)) sum += s;
  total.f32()[0] = static_cast<float>(sum);
}
void CpuBackend::scale(Tensor& x, float factor) { k::scale(x.f32(), factor, x.numel()); }
void CpuBackend::adamw_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) {
  k::adamw_update(param.f32(), grad.f32(), m.f32(), v.f32(), param.numel(), s.lr, s.beta1, s.beta2, s.eps,
                  s.weight_decay, s.step, s.grad_scale);
}

}  // namespace tessera
