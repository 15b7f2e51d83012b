// oneDNN matmul primitives behind kernels/onednn_matmul.h, cached by shape.
#include "kernels/onednn_matmul.h"

#include <dnnl.hpp>

#include <mutex>
#include <unordered_map>

#include "core/error.h"

namespace tessera::kernels::onednn {
namespace {

using dnnl::memory;

memory::data_type data_type(ElemType t) {
  switch (t) {
    case ElemType::F32: return memory::data_type::f32;
    case ElemType::BF16: return memory::data_type::bf16;
    case ElemType::F16: return memory::data_type::f16;
  }
  return memory::data_type::undef;
}

struct ShapeHash {
  size_t operator()(const MatmulShape& s) const {
    size_t h = 1469598103934665603ull;
    auto mix = [&h](int64_t v) { h = (h ^ static_cast<size_t>(v)) * 1099511628211ull; };
    for (int64_t v : {s.M, s.N, s.K, s.lda, s.ldb, s.ldc}) mix(v);
    mix(static_cast<int64_t>(s.type));
    mix((s.trans_a ? 1 : 0) | (s.trans_b ? 2 : 0) | (s.has_bias ? 4 : 0) | (s.accumulate ? 8 : 0));
    return h;
  }
};

// Row-major [rows, cols] stored with row stride ld, or its transpose stored that way.
memory::desc matrix_desc(int64_t rows, int64_t cols, int64_t ld, bool transposed, memory::data_type t) {
  const memory::dims strides = transposed ? memory::dims{1, ld} : memory::dims{ld, 1};
  return memory::desc({rows, cols}, t, strides);
}

dnnl::matmul::primitive_desc make_primitive_desc(const MatmulShape& s, const dnnl::engine& engine) {
  const memory::data_type in = data_type(s.type), f32 = memory::data_type::f32;
  const memory::desc a = matrix_desc(s.M, s.K, s.lda, s.trans_a, in);
  const memory::desc b = matrix_desc(s.K, s.N, s.ldb, s.trans_b, in);
  const memory::desc c = matrix_desc(s.M, s.N, s.ldc, false, f32);
  dnnl::primitive_attr attr;
  if (s.accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  if (s.has_bias) {
    const memory::desc bias({1, s.N}, f32, memory::dims{s.N, 1});
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, bias, c), attr, engine);
  }
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, engine);
}

}  // namespace

struct Matmul::State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mutex;
  std::unordered_map<MatmulShape, std::pair<dnnl::matmul::primitive_desc, dnnl::matmul>, ShapeHash> cache;

  std::pair<dnnl::matmul::primitive_desc, dnnl::matmul>& get(const MatmulShape& s) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(s);
    if (it == cache.end()) {
      auto pd = make_primitive_desc(s, engine);
      it = cache.emplace(s, std::make_pair(pd, dnnl::matmul(pd))).first;
    }
    return it->second;
  }
};

Matmul::Matmul() : state_(new State) {}
Matmul::~Matmul() { delete state_; }

void Matmul::run(const MatmulShape& s, const void* A, const void* B, const float* bias, float* C) {
  TESSERA_CHECK(s.M >= 0 && s.N >= 0 && s.K >= 0, "onednn matmul: negative size M={} N={} K={}", s.M, s.N, s.K);
  TESSERA_CHECK(s.has_bias == (bias != nullptr), "onednn matmul: bias pointer does not match the shape's has_bias");
  if (s.M == 0 || s.N == 0) return;
  if (s.K == 0) {  // oneDNN refuses empty reductions; the product is zero
    for (int64_t i = 0; i < s.M; ++i) {
      for (int64_t j = 0; j < s.N; ++j) {
        float& c = C[i * s.ldc + j];
        c = (s.accumulate ? c : 0.0f) + (bias ? bias[j] : 0.0f);
      }
    }
    return;
  }
  auto& [pd, primitive] = state_->get(s);
  // The memory objects only wrap the caller's pointers; creating them is cheap.
  memory a(pd.src_desc(), state_->engine, const_cast<void*>(A));
  memory b(pd.weights_desc(), state_->engine, const_cast<void*>(B));
  memory c(pd.dst_desc(), state_->engine, C);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
  if (bias != nullptr) {
    args.emplace(DNNL_ARG_BIAS, memory(pd.bias_desc(), state_->engine, const_cast<float*>(bias)));
  }
  primitive.execute(state_->stream, args);
  state_->stream.wait();
}

std::string Matmul::implementation_name(const MatmulShape& shape) { return state_->get(shape).first.impl_info_str(); }

int Matmul::cached_primitives() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return static_cast<int>(state_->cache.size());
}

bool native_bf16() {
  // oneDNN's own dispatch decides; its ISA query is the one place that knows AMX and AVX-512
  // BF16 apart from emulation.
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

}  // namespace tessera::kernels::onednn
