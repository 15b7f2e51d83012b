// CudaBackend: Tensor-level wrappers over the CUDA kernels' host launchers, on the context's
// compute stream. Every wrapper checks that its tensors live on this backend's device (a host
// pointer reaching a kernel is a crash on a GPU and silent garbage under some drivers).
#include "runtime/compute/cuda_backend.h"

#include <algorithm>
#include <cstring>

#include "kernels/cuda/adamw_cuda.h"
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/bias_cuda.h"
#include "kernels/cuda/cast_cuda.h"
#include "kernels/cuda/cross_entropy_cuda.h"
#include "kernels/cuda/embedding_cuda.h"
#include "kernels/cuda/gelu_cuda.h"
#include "kernels/cuda/gqa_cuda.h"
#include "kernels/cuda/grad_clip_cuda.h"
#include "kernels/cuda/layernorm_cuda.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/cuda/relu_cuda.h"
#include "kernels/cuda/residual_cuda.h"
#include "kernels/cuda/rmsnorm_cuda.h"
#include "kernels/cuda/rope_cuda.h"
#include "kernels/cuda/swiglu_cuda.h"
#include "kernels/rope.h"
#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

namespace kc = kernels::cuda;

int64_t cols_of(const Tensor& t) { return t.ndim() == 0 ? 1 : t.dim(t.ndim() - 1); }
int64_t rows_of(const Tensor& t) { return t.numel() / std::max<int64_t>(cols_of(t), 1); }

// Binds the device and stream once, so each op below reads as its kernel call.
struct On {
  Device device;
  cudaStream_t stream;
  template <class T>
  T* ptr(const Tensor& t, DType dtype) const {
    TESSERA_CHECK(t.dtype() == dtype, "cuda backend: a {} tensor {} where {} was expected", dtype_name(t.dtype()),
                  shape_string(t.shape()), dtype_name(dtype));
    TESSERA_CHECK(t.device() == device, "cuda backend: a tensor {} on {} given to an op on {}",
                  shape_string(t.shape()), device_name(t.device()), device_name(device));
    return t.device_data<T>();
  }
  float* f(const Tensor& t) const { return ptr<float>(t, DType::F32); }
  int32_t* i(const Tensor& t) const { return ptr<int32_t>(t, DType::I32); }
  uint16_t* h(const Tensor& t) const { return ptr<uint16_t>(t, t.dtype() == DType::F16 ? DType::F16 : DType::BF16); }
};

}  // namespace

// The kernels write fp32; an output in the compute dtype (layernorm, gelu, attention may be asked
// for one, see backend.h) is written through an fp32 scratch and one rounding cast.
template <class Write>
void CudaBackend::write_rounded(Tensor& out, Write&& write) {
  if (out.dtype() == DType::F32) return write(out);
  Tensor scratch = Tensor::empty(out.shape(), DType::F32, device());
  write(scratch);
  cast(scratch, out);
}

CudaBackend::CudaBackend(std::shared_ptr<CudaContext> context) : context_(std::move(context)) {
  TESSERA_CHECK(context_ != nullptr, "CudaBackend needs a CudaContext");
}

bool CudaBackend::native_matmul(DType dtype) const {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16;
}

std::string CudaBackend::matmul_implementation(DType dtype) const {
  if (dtype == DType::BF16) return "cublaslt bf16 (fp32 accumulate)";
  if (dtype == DType::F16) return "cublaslt fp16 (fp32 accumulate)";
  return context_->cublas().allow_tf32() ? "cublaslt tf32" : "cublaslt fp32";
}

void CudaBackend::matmul(const MatmulArgs& m) {
  const On on{device(), context_->stream()};
  TESSERA_CHECK(m.a.dtype() == m.b.dtype(), "matmul: input dtypes differ ({} and {})", dtype_name(m.a.dtype()),
                dtype_name(m.b.dtype()));
  TESSERA_CHECK(native_matmul(m.a.dtype()), "cuda matmul: {} inputs are not supported (fp32, bf16, fp16)",
                dtype_name(m.a.dtype()));
  const int64_t M = m.trans_a ? cols_of(m.a) : rows_of(m.a), K = m.trans_a ? rows_of(m.a) : cols_of(m.a);
  const int64_t N = m.trans_b ? rows_of(m.b) : cols_of(m.b);
  TESSERA_CHECK((m.trans_b ? cols_of(m.b) : rows_of(m.b)) == K && rows_of(m.c) == M && cols_of(m.c) == N,
                "matmul: shapes {} x {} -> {} do not match", shape_string(m.a.shape()), shape_string(m.b.shape()),
                shape_string(m.c.shape()));
  const DType in = m.a.dtype();
  float* c = on.f(m.c);
  kc::CublasHandle& handle = context_->cublas();
  // The Linear shape (x W^T + bias, written) has a launcher that fuses the bias into the epilogue.
  if (m.bias != nullptr && !m.trans_a && m.trans_b && !m.accumulate) {
    const float* bias = on.f(*m.bias);
    if (in == DType::BF16) return kc::linear_forward_bf16(handle, c, on.h(m.a), on.h(m.b), bias, M, K, N, on.stream);
    if (in == DType::F16) return kc::linear_forward_f16(handle, c, on.h(m.a), on.h(m.b), bias, M, K, N, on.stream);
    return kc::linear_forward(handle, c, on.f(m.a), on.f(m.b), bias, M, K, N, on.stream);
  }
  const float beta = m.accumulate ? 1.0f : 0.0f;
  if (in != DType::F32) {
    const auto gemm = in == DType::BF16 ? kc::gemm_bf16 : kc::gemm_f16;
    gemm(handle, m.trans_a, m.trans_b, M, N, K, 1.0f, on.h(m.a), cols_of(m.a), on.h(m.b), cols_of(m.b), beta, c, N,
         on.stream);
  } else {
    kc::gemm(handle, m.trans_a, m.trans_b, M, N, K, 1.0f, on.f(m.a), cols_of(m.a), on.f(m.b), cols_of(m.b), beta, c,
             N, on.stream);
  }
  if (m.bias != nullptr) kc::bias_forward(c, on.f(*m.bias), M, N, on.stream);
}

void CudaBackend::cast(const Tensor& src, Tensor& dst) {
  const On on{device(), context_->stream()};
  TESSERA_CHECK(src.numel() == dst.numel(), "cast: {} elements into {}", src.numel(), dst.numel());
  const DType from = src.dtype(), to = dst.dtype();
  if (from == to) {
    on.ptr<char>(src, from);  // both on this device: a cast never moves data between devices
    on.ptr<char>(dst, to);
    return copy_tensor(dst, src);
  }
  if (from == DType::F32 && to == DType::BF16) return kc::cast_f32_to_bf16(on.h(dst), on.f(src), src.numel(), on.stream);
  if (from == DType::BF16 && to == DType::F32) return kc::cast_bf16_to_f32(on.f(dst), on.h(src), src.numel(), on.stream);
  if (from == DType::F32 && to == DType::F16) return kc::cast_f32_to_f16(on.h(dst), on.f(src), src.numel(), on.stream);
  if (from == DType::F16 && to == DType::F32) return kc::cast_f16_to_f32(on.f(dst), on.h(src), src.numel(), on.stream);
  TESSERA_CHECK(false, "cuda cast: {} to {} has no CUDA kernel (f32 <-> bf16 and f32 <-> f16 only)", dtype_name(from),
                dtype_name(to));
}

void CudaBackend::layernorm_forward(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                                    const Tensor& bias) {
  const On on{device(), context_->stream()};
  write_rounded(out, [&](Tensor& dst) {
    kc::layernorm_forward(on.f(dst), on.f(mean), on.f(rstd), on.f(x), on.f(weight), on.f(bias), rows_of(x),
                          cols_of(x), on.stream);
  });
}

void CudaBackend::layernorm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                                     const Tensor& weight, const Tensor& mean, const Tensor& rstd) {
  const On on{device(), context_->stream()};
  kc::layernorm_backward(on.f(dx), on.f(dweight), on.f(dbias), on.f(dout), on.f(x), on.f(weight), on.f(mean),
                         on.f(rstd), rows_of(x), cols_of(x), on.stream);
}

// The flash kernel's backward needs the forward's output and the log-sum-exp of each row; the
// saved state holds both ([out | lse]), since `out` itself may be reused by the layer.
Tensor CudaBackend::attention_forward(Tensor& out, const Tensor& qkv, int64_t B, int64_t T, int64_t H, int64_t D) {
  const On on{device(), context_->stream()};
  const int64_t out_n = B * T * H * D;
  Tensor saved = Tensor::empty({out_n + B * H * T}, DType::F32, device());
  float* saved_out = on.f(saved);
  kc::attention_forward(saved_out, saved_out + out_n, on.f(qkv), B, T, H, D, on.stream);
  const Tensor saved_view = saved.narrow(0, out_n).view(out.shape());
  write_rounded(out, [&](Tensor& dst) { copy_tensor(dst, saved_view); });
  return saved;
}

void CudaBackend::attention_backward(Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& saved,
                                     int64_t B, int64_t T, int64_t H, int64_t D) {
  const On on{device(), context_->stream()};
  const float* saved_out = on.f(saved);
  kc::attention_backward(on.f(dqkv), on.f(dout), on.f(qkv), saved_out, saved_out + B * T * H * D, B, T, H, D,
                         on.stream);
}

void CudaBackend::rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) {
  const On on{device(), context_->stream()};
  kc::rmsnorm_forward(on.f(out), on.f(rstd), on.f(x), on.f(weight), rows_of(x), cols_of(x), eps, on.stream);
}

void CudaBackend::rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x,
                                   const Tensor& weight, const Tensor& rstd) {
  const On on{device(), context_->stream()};
  kc::rmsnorm_backward(on.f(dx), on.f(dweight), on.f(dout), on.f(x), on.f(weight), on.f(rstd), rows_of(x), cols_of(x),
                       on.stream);
}

// The tables are constants made once per model: computed by the CPU kernel (the reference the
// CUDA rotation is tested against) and uploaded, rather than a kernel of their own.
void CudaBackend::rope_tables(Tensor& cos, Tensor& sin, int64_t T, int64_t head_dim, float base) {
  Tensor host_cos = Tensor::empty(cos.shape()), host_sin = Tensor::empty(sin.shape());
  kernels::cpu::rope_tables(host_cos.f32(), host_sin.f32(), T, head_dim, base);
  copy_tensor(cos, host_cos);
  copy_tensor(sin, host_sin);
}

// The tables are [T, head_dim / 2]: their width gives the head dimension. In place, as on the CPU.
void CudaBackend::rope_forward(Tensor& x, const Tensor& cos, const Tensor& sin, int64_t T, int64_t heads) {
  const On on{device(), context_->stream()};
  kc::rope_forward(on.f(x), on.f(x), on.f(cos), on.f(sin), rows_of(x), T, heads, 2 * cols_of(cos), on.stream);
}

void CudaBackend::rope_backward(Tensor& dx, const Tensor& cos, const Tensor& sin, int64_t T, int64_t heads) {
  const On on{device(), context_->stream()};
  kc::rope_backward(on.f(dx), on.f(dx), on.f(cos), on.f(sin), rows_of(dx), T, heads, 2 * cols_of(cos), on.stream);
}

void CudaBackend::swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) {
  const On on{device(), context_->stream()};
  kc::swiglu_forward(on.f(out), on.f(gate), on.f(up), gate.numel(), on.stream);
}

void CudaBackend::swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& gate, const Tensor& up,
                                  const Tensor& dout) {
  const On on{device(), context_->stream()};
  kc::swiglu_backward(on.f(dgate), on.f(dup), on.f(gate), on.f(up), on.f(dout), gate.numel(), on.stream);
}

void CudaBackend::gqa_pack_forward(Tensor& qkv, const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                                   int64_t groups) {
  const On on{device(), context_->stream()};
  kc::gqa_pack_forward(on.f(qkv), on.f(q), on.f(k), on.f(v), rows_of(q), heads, groups, cols_of(q) / heads,
                       on.stream);
}

void CudaBackend::gqa_pack_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dqkv, int64_t heads,
                                    int64_t groups) {
  const On on{device(), context_->stream()};
  kc::gqa_pack_backward(on.f(dq), on.f(dk), on.f(dv), on.f(dqkv), rows_of(dq), heads, groups, cols_of(dq) / heads,
                        on.stream);
}

void CudaBackend::gelu_forward(Tensor& out, const Tensor& x) {
  const On on{device(), context_->stream()};
  write_rounded(out, [&](Tensor& dst) { kc::gelu_forward(on.f(dst), on.f(x), x.numel(), on.stream); });
}

void CudaBackend::gelu_backward(Tensor& dx, const Tensor& x, const Tensor& dout) {
  const On on{device(), context_->stream()};
  kc::gelu_backward(on.f(dx), on.f(x), on.f(dout), x.numel(), on.stream);
}

void CudaBackend::relu_forward(Tensor& out, const Tensor& x) {
  const On on{device(), context_->stream()};
  kc::relu_forward(on.f(out), on.f(x), x.numel(), on.stream);
}

void CudaBackend::relu_backward(Tensor& dx, const Tensor& x, const Tensor& dout) {
  const On on{device(), context_->stream()};
  kc::relu_backward(on.f(dx), on.f(x), on.f(dout), x.numel(), on.stream);
}

void CudaBackend::bias_forward(Tensor& x, const Tensor& bias) {
  const On on{device(), context_->stream()};
  kc::bias_forward(on.f(x), on.f(bias), rows_of(x), cols_of(x), on.stream);
}

void CudaBackend::bias_backward(Tensor& dbias, const Tensor& dout) {
  const On on{device(), context_->stream()};
  kc::bias_backward(on.f(dbias), on.f(dout), rows_of(dout), cols_of(dout), on.stream);
}

void CudaBackend::bias_backward_cast(Tensor& dbias, Tensor& dout_c, const Tensor& dout) {
  bias_backward(dbias, dout);
  cast(dout, dout_c);
}

// Composed on the GPU, where the fp32 round trip costs bandwidth the GEMMs dwarf.
void CudaBackend::gelu_backward_bias_cast(Tensor& dbias, Tensor& dx_c, const Tensor& x, const Tensor& dout) {
  Tensor dx = Tensor::empty(dout.shape(), DType::F32, device());
  gelu_backward(dx, x, dout);
  bias_backward_cast(dbias, dx_c, dx);
}

void CudaBackend::residual_forward(Tensor& out, const Tensor& a, const Tensor& b) {
  const On on{device(), context_->stream()};
  kc::residual_forward(on.f(out), on.f(a), on.f(b), a.numel(), on.stream);
}

void CudaBackend::accumulate(Tensor& acc, const Tensor& x) {
  const On on{device(), context_->stream()};
  kc::accumulate(on.f(acc), on.f(x), x.numel(), on.stream);
}

void CudaBackend::token_embedding_forward(Tensor& out, const Tensor& tokens, const Tensor& wte, int64_t vocab_start) {
  const On on{device(), context_->stream()};
  kc::token_embedding_forward(on.f(out), on.i(tokens), on.f(wte), tokens.numel(), cols_of(wte), vocab_start,
                              wte.dim(0), on.stream);
}

void CudaBackend::token_embedding_backward(Tensor& dwte, const Tensor& dout, const Tensor& tokens,
                                           int64_t vocab_start) {
  const On on{device(), context_->stream()};
  kc::token_embedding_backward(on.f(dwte), on.f(dout), on.i(tokens), tokens.numel(), cols_of(dwte), vocab_start,
                               dwte.dim(0), on.stream);
}

void CudaBackend::position_embedding_forward(Tensor& x, const Tensor& wpe, int64_t B, int64_t T) {
  const On on{device(), context_->stream()};
  kc::position_embedding_forward(on.f(x), on.f(wpe), B, T, cols_of(wpe), on.stream);
}

void CudaBackend::position_embedding_backward(Tensor& dwpe, const Tensor& dout, int64_t B, int64_t T) {
  const On on{device(), context_->stream()};
  kc::position_embedding_backward(on.f(dwpe), on.f(dout), B, T, cols_of(dwpe), on.stream);
}

void CudaBackend::cross_entropy_row_max(Tensor& row_max, const Tensor& logits, int64_t valid) {
  const On on{device(), context_->stream()};
  kc::cross_entropy_row_max(on.f(row_max), on.f(logits), rows_of(logits), cols_of(logits), valid, on.stream);
}

void CudaBackend::cross_entropy_partial_sums(Tensor& sum_exp, Tensor& target_logit, const Tensor& logits,
                                             const Tensor& row_max, const Tensor& targets, int64_t valid,
                                             int64_t vocab_start) {
  const On on{device(), context_->stream()};
  kc::cross_entropy_partial_sums(on.f(sum_exp), on.f(target_logit), on.f(logits), on.f(row_max), on.i(targets),
                                 rows_of(logits), cols_of(logits), valid, vocab_start, on.stream);
}

void CudaBackend::cross_entropy_loss(Tensor& loss, const Tensor& row_max, const Tensor& sum_exp,
                                     const Tensor& target_logit) {
  const On on{device(), context_->stream()};
  kc::cross_entropy_loss(on.f(loss), on.f(row_max), on.f(sum_exp), on.f(target_logit), row_max.numel(), on.stream);
}

void CudaBackend::cross_entropy_backward(Tensor& dlogits, const Tensor& logits, const Tensor& row_max,
                                         const Tensor& sum_exp, const Tensor& targets, const Tensor& dloss,
                                         int64_t valid, int64_t vocab_start) {
  const On on{device(), context_->stream()};
  kc::cross_entropy_backward(on.f(dlogits), on.f(logits), on.f(row_max), on.f(sum_exp), on.i(targets), on.f(dloss),
                             rows_of(logits), cols_of(logits), valid, vocab_start, on.stream);
}


// Each tensor's sum of squares in double on the device, kept in the bytes of an F32 tensor of 2n
// elements (Tensor has no F64); sum_squares reads them back in one host wait.
Tensor CudaBackend::sums_of_squares(const std::vector<const Tensor*>& xs) {
  const On on{device(), context_->stream()};
  const auto n = static_cast<int64_t>(xs.size());
  Tensor sums = Tensor::empty({2 * std::max<int64_t>(n, 1)}, DType::F32, device());
  Tensor scratch = Tensor::empty({2 * kc::kSumSquaresScratch}, DType::F32, device());
  auto* out = reinterpret_cast<double*>(on.f(sums));
  for (int64_t i = 0; i < n; ++i) {
    kc::sum_squares(out + i, on.f(*xs[i]), xs[i]->numel(), reinterpret_cast<double*>(on.f(scratch)), on.stream);
  }
  return sums;
}

std::vector<double> CudaBackend::sum_squares(const std::vector<const Tensor*>& xs) {
  const Tensor sums = sums_of_squares(xs);
  Tensor host = Tensor::empty(sums.shape());
  copy_tensor(host, sums);
  std::vector<double> result(xs.size());
  if (!result.empty()) std::memcpy(result.data(), host.f32(), sizeof(double) * result.size());
  return result;
}

void CudaBackend::sum_squares_total(const std::vector<const Tensor*>& xs, Tensor& total) {
  const On on{device(), context_->stream()};
  TESSERA_CHECK(total.numel() == 1, "sum_squares_total: the total is one element, not {}", total.numel());
  const Tensor sums = sums_of_squares(xs);
  kc::add_in_order(on.f(total), reinterpret_cast<const double*>(on.f(sums)), static_cast<int64_t>(xs.size()),
                   on.stream);
}

void CudaBackend::scale(Tensor& x, float factor) {
  const On on{device(), context_->stream()};
  kc::scale(on.f(x), factor, x.numel(), on.stream);
}

void CudaBackend::adamw_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) {
  const On on{device(), context_->stream()};
  kc::adamw_update(on.f(param), nullptr, on.f(grad), on.f(m), on.f(v), param.numel(), s.lr, s.beta1, s.beta2, s.eps,
                   s.weight_decay, s.step, s.grad_scale, on.stream);
}

}  // namespace tessera
