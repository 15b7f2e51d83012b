// bf16 causal self-attention: 4-D oneDNN matmuls around an fp32 softmax (see
// kernels/onednn_attention.h). Each product runs per block of query rows, over all heads in one
// call, against only the keys that block sees, so the masked upper triangle is computed only
// inside the diagonal blocks. A block's scores and probabilities are stored dense ([H, rows,
// keys]): oneDNN 2.6 picks its brgemm kernels only for dense (permuted) operands and falls back
// to the slower gemm:jit on a sub-block of a T x T matrix, whose rows have a gap.
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

// Query rows per block (see the top of this file). 64 keeps the multiply-adds above the
// diagonal a small fraction (~64 / T) while each product still has 64+ rows per head.
constexpr int64_t kRowBlock = 64;

// Row blocks of one sequence: block `i` holds queries [first(i), first(i) + rows(i)) against keys
// [0, keys(i)); its scores/probabilities are a dense [H, rows, keys] array at offset(i) of the
// sequence's H * triangle() elements.
struct RowBlocks {
  int64_t T, H;
  int64_t count() const { return (T + kRowBlock - 1) / kRowBlock; }
  int64_t first(int64_t i) const { return i * kRowBlock; }
  int64_t rows(int64_t i) const { return std::min(kRowBlock, T - first(i)); }
  int64_t keys(int64_t i) const { return first(i) + rows(i); }
  int64_t offset(int64_t i) const {  // H * sum over blocks j < i of rows(j) * keys(j)
    const int64_t full = std::min(i, T / kRowBlock);  // whole blocks before i: keys kRowBlock, 2 kRowBlock, ...
    return H * kRowBlock * kRowBlock * full * (full + 1) / 2 + (i > full ? H * rows(full) * keys(full) : 0);
  }
  int64_t triangle() const { return offset(count()) / H; }
};

// One product's operand sizes: a block of n query rows against `keys` keys, all H heads.
struct Shape {
  int64_t H, D, n, keys;
  // `rows` rows of a dense [rows, H*D] block seen as [1, H, rows, D] (transposed: [1, H, D, rows]).
  memory::desc heads(int64_t rows, dt t, bool transposed = false) const {
    const int64_t ld = H * D;
    return transposed ? memory::desc({1, H, D, rows}, t, dims{rows * ld, D, 1, ld})
                      : memory::desc({1, H, rows, D}, t, dims{rows * ld, D, ld, 1});
  }
  // A dense [H, n, keys] score block (transposed: each head's matrix read as its transpose).
  memory::desc block(dt t, bool transposed = false) const {
    return transposed ? memory::desc({1, H, keys, n}, t, dims{H * n * keys, n * keys, 1, keys})
                      : memory::desc({1, H, n, keys}, t, dims{H * n * keys, n * keys, keys, 1});
  }
};

// dV and dK sum over the row blocks: those products add into their output.
bool accumulates(Product p) { return p == Product::PtdO || p == Product::dStQ; }

dnnl::matmul::primitive_desc describe(Product p, const Shape& s, bool out_bf16, const dnnl::engine& engine) {
  const dt bf = dt::bf16, f32 = dt::f32;
  // Sequences run these primitives from several threads at once, and the library's scratchpad
  // is one per primitive (unless oneDNN is built with DNNL_ENABLE_CONCURRENT_EXEC): concurrent
  // executions overwrote each other's packed blocks. Each call passes its own scratchpad.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (accumulates(p)) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  auto pd = [&](const memory::desc& a, const memory::desc& b, const memory::desc& c) {
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, engine);
  };
  switch (p) {
    case Product::QKt: return pd(s.heads(s.n, bf), s.heads(s.keys, bf, true), s.block(f32));
    case Product::PV: return pd(s.block(bf), s.heads(s.keys, bf), s.heads(s.n, out_bf16 ? bf : f32));
    case Product::PtdO: return pd(s.block(bf, true), s.heads(s.n, bf), s.heads(s.keys, f32));
    case Product::dOVt: return pd(s.heads(s.n, bf), s.heads(s.keys, bf, true), s.block(f32));
    case Product::dSK: return pd(s.block(bf), s.heads(s.keys, bf), s.heads(s.n, f32));
    case Product::dStQ: return pd(s.block(bf, true), s.heads(s.n, bf), s.heads(s.keys, f32));
  }
  TESSERA_CHECK(false, "onednn attention: unknown product");
  return pd(s.block(bf), s.heads(s.keys, bf), s.heads(s.n, f32));
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

// p [H][n][keys] bf16 <- the causal softmax of scale * s [H][n][keys], the scores of query rows
// first..first+n (row r of each head is query first + r).
void causal_softmax(uint16_t* p, float* s, const Shape& sh, int64_t first, float scale) {
  for (int64_t r = 0; r < sh.H * sh.n; ++r) {
    const int64_t valid = first + r % sh.n + 1;
    float* row = s + r * sh.keys;
    const float row_max = ConstArrayMap(row, valid).maxCoeff();
    // exp over whole SIMD vectors (Eigen evaluates a ragged tail one scalar exp at a time); the
    // extra entries are finite masked scores, zeroed before the sum.
    ArrayMap padded(row, std::min(sh.keys, (valid + kSimdFloats - 1) / kSimdFloats * kSimdFloats));
    padded = ((padded - row_max) * scale).exp();
    std::fill(row + valid, row + padded.size(), 0.0f);
    padded *= 1.0f / padded.sum();
    cpu::cast_f32_to_bf16(p + r * sh.keys, row, valid);
    std::fill(p + r * sh.keys + valid, p + (r + 1) * sh.keys, uint16_t{0});  // bf16 +0
  }
}

// ds [H][n][keys] bf16 <- scale * P * (dP - rowsum(dP * P)), with P the block's saved bf16
// probabilities and dp [H][n][keys] fp32.
void softmax_backward(uint16_t* ds, float* dp, const uint16_t* p, const Shape& sh, int64_t first, float scale) {
  const auto prob = scratch<float>(sh.keys);
  for (int64_t r = 0; r < sh.H * sh.n; ++r) {
    const int64_t valid = first + r % sh.n + 1;  // P is 0 beyond the diagonal, so dS is too
    cpu::cast_bf16_to_f32(prob.get(), p + r * sh.keys, valid);
    ArrayMap d(dp + r * sh.keys, valid);
    const ConstArrayMap pr(prob.get(), valid);
    d = pr * (d - (d * pr).sum()) * scale;
    cpu::cast_f32_to_bf16(ds + r * sh.keys, dp + r * sh.keys, valid);
    std::fill(ds + r * sh.keys + valid, ds + (r + 1) * sh.keys, uint16_t{0});
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
  using Key = std::tuple<Product, int64_t, int64_t, int64_t, int64_t, bool>;  // product, H, D, n, keys, out_bf16
  std::map<Key, std::pair<dnnl::matmul::primitive_desc, dnnl::matmul>> cache;

  // c = a * b for product p; the descriptors say which views of the buffers are read.
  void run(Product p, const Shape& s, const void* a, const void* b, void* c, bool out_bf16 = false) {
    std::pair<dnnl::matmul::primitive_desc, dnnl::matmul>* entry;
    {
      std::lock_guard<std::mutex> lock(mutex);
      const Key key{p, s.H, s.D, s.n, s.keys, out_bf16};
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

int64_t attention_saved_elements(int64_t B, int64_t T, int64_t H, int64_t D) {
  return B * (3 * T * H * D + H * RowBlocks{T, H}.triangle());
}

// Per sequence b: split its q, k, v, then per row block the scores, softmax and output rows.
void Attention::forward(void* out, bool out_bf16, uint16_t* saved, const float* qkv, int64_t B, int64_t T,
                        int64_t H, int64_t D) {
  const RowBlocks blocks{T, H};
  const int64_t HD = H * D, block = B * T * HD, seq = T * HD, probs = H * blocks.triangle();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  uint16_t *q = saved, *k = saved + block, *v = saved + 2 * block, *p = saved + 3 * block;
#pragma omp parallel num_threads(sequence_threads(B, T, H, D))
  {
    const auto scores = scratch<float>(H * std::min(kRowBlock, T) * T);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      split_qkv(saved, block, qkv, b * T, T, HD);
      for (int64_t i = 0; i < blocks.count(); ++i) {
        const Shape sh{H, D, blocks.rows(i), blocks.keys(i)};
        const int64_t first = blocks.first(i);
        uint16_t* pb = p + b * probs + blocks.offset(i);
        state_->run(Product::QKt, sh, q + b * seq + first * HD, k + b * seq, scores.get());
        causal_softmax(pb, scores.get(), sh, first, scale);
        const int64_t o = b * seq + first * HD;
        void* ob = out_bf16 ? static_cast<void*>(static_cast<uint16_t*>(out) + o)
                            : static_cast<void*>(static_cast<float*>(out) + o);
        state_->run(Product::PV, sh, pb, v + b * seq, ob, out_bf16);
      }
    }
  }
}

// With S = scale Q K^T, P = softmax(S), O = P V:
//   dV = P^T dO,  dP = dO V^T,  dS = scale P * (dP - rowsum(dP * P)),  dQ = dS K,  dK = dS^T Q.
// Per row block: dQ of its rows; dV and dK of the keys it saw, summed over the blocks.
void Attention::backward(float* dqkv, const float* dout, const uint16_t* saved, int64_t B, int64_t T, int64_t H,
                         int64_t D) {
  const RowBlocks blocks{T, H};
  const int64_t HD = H * D, block = B * T * HD, seq = T * HD, probs = H * blocks.triangle();
  const int64_t block_scores = H * std::min(kRowBlock, T) * T;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const uint16_t *q = saved, *k = saved + block, *v = saved + 2 * block, *p = saved + 3 * block;
#pragma omp parallel num_threads(sequence_threads(B, T, H, D))
  {
    const auto d_o = scratch<uint16_t>(seq);
    const auto grads = scratch<float>(3 * seq);  // dq | dk | dv of one sequence, joined into dqkv
    const auto dp = scratch<float>(block_scores);
    const auto ds = scratch<uint16_t>(block_scores);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      cpu::cast_f32_to_bf16(d_o.get(), dout + b * seq, seq);
      float *dq = grads.get(), *dk = dq + seq, *dv = dq + 2 * seq;
      std::fill(dk, dk + 2 * seq, 0.0f);  // dK and dV accumulate over the row blocks
      for (int64_t i = 0; i < blocks.count(); ++i) {
        const Shape sh{H, D, blocks.rows(i), blocks.keys(i)};
        const int64_t first = blocks.first(i);
        const uint16_t* pb = p + b * probs + blocks.offset(i);
        state_->run(Product::PtdO, sh, pb, d_o.get() + first * HD, dv);
        state_->run(Product::dOVt, sh, d_o.get() + first * HD, v + b * seq, dp.get());
        softmax_backward(ds.get(), dp.get(), pb, sh, first, scale);
        state_->run(Product::dSK, sh, ds.get(), k + b * seq, dq + first * HD);
        state_->run(Product::dStQ, sh, ds.get(), q + b * seq + first * HD, dk);
      }
      join_qkv(dqkv, grads.get(), b * T, T, HD);
    }
  }
}

}  // namespace tessera::kernels::onednn
