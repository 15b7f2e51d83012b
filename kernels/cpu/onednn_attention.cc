// bf16 causal self-attention: 4-D oneDNN matmuls around an fp32 softmax (see
// kernels/onednn_attention.h). The products cover whole T x T matrices, twice the causal
// triangle's multiply-adds: oneDNN's bf16 brgemm still does them faster than Eigen's fp32
// triangular products, and keeps each product one call over all heads.
#include "kernels/onednn_attention.h"

#include <dnnl.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "core/error.h"
#include "kernels/cast.h"
#include "kernels/cpu/common.h"

namespace tessera::kernels::onednn {
namespace {

using cpu::detail::ArrayMap;
using cpu::detail::ConstArrayMap;
using dnnl::memory;
using dt = memory::data_type;
using dims = memory::dims;

// The six products; each reads two bf16 operands and writes fp32 (PV: fp32 or bf16).
enum class Product { QKt, PV, PtdO, dOVt, dSK, dStQ };

struct Shape {
  int64_t B, T, H, D;
  // Heads of a [B*T, H*D] row-major block seen as [B, H, T, D] (transposed: [B, H, D, T]).
  memory::desc heads(dt t, bool transposed = false) const {
    const int64_t ld = H * D;
    return transposed ? memory::desc({B, H, D, T}, t, dims{T * ld, D, 1, ld})
                      : memory::desc({B, H, T, D}, t, dims{T * ld, D, ld, 1});
  }
  // The dense [B, H, T, T] score matrices (transposed: each matrix read as its transpose).
  memory::desc square(dt t, bool transposed = false) const {
    return memory::desc({B, H, T, T}, t, transposed ? dims{H * T * T, T * T, 1, T} : dims{H * T * T, T * T, T, 1});
  }
};

dnnl::matmul::primitive_desc describe(Product p, const Shape& s, bool out_bf16, const dnnl::engine& engine) {
  const dt bf = dt::bf16, f32 = dt::f32;
  // Sequences run these primitives from several threads at once, and the library's scratchpad
  // is one per primitive (unless oneDNN is built with DNNL_ENABLE_CONCURRENT_EXEC): concurrent
  // executions overwrote each other's packed blocks. Each call passes its own scratchpad.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto pd = [&](const memory::desc& a, const memory::desc& b, const memory::desc& c) {
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, engine);
  };
  switch (p) {
    case Product::QKt: return pd(s.heads(bf), s.heads(bf, true), s.square(f32));
    case Product::PV: return pd(s.square(bf), s.heads(bf), s.heads(out_bf16 ? bf : f32));
    case Product::PtdO: return pd(s.square(bf, true), s.heads(bf), s.heads(f32));
    case Product::dOVt: return pd(s.heads(bf), s.heads(bf, true), s.square(f32));
    case Product::dSK: return pd(s.square(bf), s.heads(bf), s.heads(f32));
    case Product::dStQ: return pd(s.square(bf, true), s.heads(bf), s.heads(f32));
  }
  TESSERA_CHECK(false, "onednn attention: unknown product");
  return pd(s.heads(bf), s.heads(bf, true), s.square(f32));
}

template <class T>
std::unique_ptr<T[]> scratch(int64_t n) {
  return std::unique_ptr<T[]>(new T[static_cast<size_t>(n)]);  // uninitialised: every element is written
}

// qkv [rows, 3*HD] fp32 -> its q, k, v blocks as three dense [rows, HD] bf16 blocks of
// `block` elements each (only rows first..first+n).
void split_qkv(uint16_t* q, int64_t block, const float* qkv, int64_t first, int64_t n, int64_t HD) {
  for (int64_t r = first; r < first + n; ++r) {
    for (int64_t part = 0; part < 3; ++part) {
      cpu::cast_f32_to_bf16(q + part * block + r * HD, qkv + r * 3 * HD + part * HD, HD);
    }
  }
}

// The inverse layout change in fp32: dq, dk, dv [3][n][HD] -> rows first..first+n of dqkv.
void join_qkv(float* dqkv, const float* dq, int64_t first, int64_t n, int64_t HD) {
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t part = 0; part < 3; ++part) {
      const float* from = dq + (part * n + r) * HD;
      std::copy(from, from + HD, dqkv + (first + r) * 3 * HD + part * HD);
    }
  }
}

// Floats in one AVX-512 vector.
constexpr int64_t kSimdFloats = 16;

// p [rows][T] bf16 <- the causal softmax of scale * s [rows][T] (row r is query position r % T).
void causal_softmax(uint16_t* p, float* s, int64_t rows, int64_t T, float scale) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r % T + 1;
    float* row = s + r * T;
    const float row_max = ConstArrayMap(row, n).maxCoeff();
    // exp over whole SIMD vectors (Eigen evaluates a ragged tail one scalar exp at a time); the
    // extra entries are finite masked scores, zeroed before the sum.
    ArrayMap padded(row, std::min(T, (n + kSimdFloats - 1) / kSimdFloats * kSimdFloats));
    padded = ((padded - row_max) * scale).exp();
    std::fill(row + n, row + padded.size(), 0.0f);
    padded *= 1.0f / padded.sum();
    cpu::cast_f32_to_bf16(p + r * T, row, n);
    std::fill(p + r * T + n, p + (r + 1) * T, uint16_t{0});  // bf16 +0
  }
}

// ds [rows][T] bf16 <- scale * P * (dP - rowsum(dP * P)), with P the saved bf16 probabilities.
void softmax_backward(uint16_t* ds, float* dp, const uint16_t* p, int64_t rows, int64_t T, float scale) {
  const auto prob = scratch<float>(T);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r % T + 1;  // P is 0 beyond the diagonal, so dS is too
    cpu::cast_bf16_to_f32(prob.get(), p + r * T, n);
    ArrayMap d(dp + r * T, n);
    const ConstArrayMap pr(prob.get(), n);
    d = pr * (d - (d * pr).sum()) * scale;
    cpu::cast_f32_to_bf16(ds + r * T, dp + r * T, n);
    std::fill(ds + r * T + n, ds + (r + 1) * T, uint16_t{0});
  }
}

// Sequences run one per thread in one parallel region (oneDNN then runs each product on the
// calling thread): one fork/join per call instead of one per product and pass, which matters
// on a shared machine where every barrier waits for a descheduled thread. With fewer sequences
// than threads they run one after another and oneDNN spreads each product over the threads.
int sequence_threads(int64_t B, int64_t T, int64_t H, int64_t D) {
  const int threads = cpu::detail::threads_for(B * H * T * T * D);
  return B >= threads ? threads : 1;
}

}  // namespace

struct Attention::State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::mutex mutex;
  using Key = std::tuple<Product, int64_t, int64_t, int64_t, int64_t, bool>;
  std::map<Key, std::pair<dnnl::matmul::primitive_desc, dnnl::matmul>> cache;

  // c = a * b for product p; the descriptors say which views of the buffers are read.
  void run(Product p, const Shape& s, const void* a, const void* b, void* c, bool out_bf16 = false) {
    std::pair<dnnl::matmul::primitive_desc, dnnl::matmul>* entry;
    {
      std::lock_guard<std::mutex> lock(mutex);
      const Key key{p, s.B, s.T, s.H, s.D, out_bf16};
      auto it = cache.find(key);
      if (it == cache.end()) {
        auto pd = describe(p, s, out_bf16, engine);
        it = cache.emplace(key, std::make_pair(pd, dnnl::matmul(pd))).first;
      }
      entry = &it->second;
    }
    const auto& pd = entry->first;
    dnnl::stream stream(engine);  // one per call: calls come from several threads at once
    const memory::desc scratchpad_desc = pd.scratchpad_desc();
    const auto scratchpad = scratch<char>(static_cast<int64_t>(std::max<size_t>(scratchpad_desc.get_size(), 1)));
    entry->second.execute(stream, {{DNNL_ARG_SRC, memory(pd.src_desc(), engine, const_cast<void*>(a))},
                                   {DNNL_ARG_WEIGHTS, memory(pd.weights_desc(), engine, const_cast<void*>(b))},
                                   {DNNL_ARG_DST, memory(pd.dst_desc(), engine, c)},
                                   {DNNL_ARG_SCRATCHPAD, memory(scratchpad_desc, engine, scratchpad.get())}});
    stream.wait();
  }
};

Attention::Attention() : state_(new State) {}
Attention::~Attention() { delete state_; }

// Shapes of one sequence's products, and offsets of sequence b in each buffer.
void Attention::forward(void* out, bool out_bf16, uint16_t* saved, const float* qkv, int64_t B, int64_t T,
                        int64_t H, int64_t D) {
  const Shape one{1, T, H, D};
  const int64_t HD = H * D, block = B * T * HD, seq = T * HD, probs = H * T * T;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  uint16_t *q = saved, *k = saved + block, *v = saved + 2 * block, *p = saved + 3 * block;
#pragma omp parallel num_threads(sequence_threads(B, T, H, D))
  {
    const auto scores = scratch<float>(probs);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      split_qkv(saved, block, qkv, b * T, T, HD);
      state_->run(Product::QKt, one, q + b * seq, k + b * seq, scores.get());
      causal_softmax(p + b * probs, scores.get(), H * T, T, scale);
      void* o = out_bf16 ? static_cast<void*>(static_cast<uint16_t*>(out) + b * seq)
                         : static_cast<void*>(static_cast<float*>(out) + b * seq);
      state_->run(Product::PV, one, p + b * probs, v + b * seq, o, out_bf16);
    }
  }
}

// With S = scale Q K^T, P = softmax(S), O = P V:
//   dV = P^T dO,  dP = dO V^T,  dS = scale P * (dP - rowsum(dP * P)),  dQ = dS K,  dK = dS^T Q.
void Attention::backward(float* dqkv, const float* dout, const uint16_t* saved, int64_t B, int64_t T, int64_t H,
                         int64_t D) {
  const Shape one{1, T, H, D};
  const int64_t HD = H * D, block = B * T * HD, seq = T * HD, probs = H * T * T;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const uint16_t *q = saved, *k = saved + block, *v = saved + 2 * block, *p = saved + 3 * block;
#pragma omp parallel num_threads(sequence_threads(B, T, H, D))
  {
    const auto d_o = scratch<uint16_t>(seq);
    const auto grads = scratch<float>(3 * seq);  // dq | dk | dv of one sequence, joined into dqkv
    const auto dp = scratch<float>(probs);
    const auto ds = scratch<uint16_t>(probs);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      cpu::cast_f32_to_bf16(d_o.get(), dout + b * seq, seq);
      state_->run(Product::PtdO, one, p + b * probs, d_o.get(), grads.get() + 2 * seq);
      state_->run(Product::dOVt, one, d_o.get(), v + b * seq, dp.get());
      softmax_backward(ds.get(), dp.get(), p + b * probs, H * T, T, scale);
      state_->run(Product::dSK, one, ds.get(), k + b * seq, grads.get());
      state_->run(Product::dStQ, one, ds.get(), q + b * seq, grads.get() + seq);
      join_qkv(dqkv, grads.get(), b * T, T, HD);
    }
  }
}

}  // namespace tessera::kernels::onednn
