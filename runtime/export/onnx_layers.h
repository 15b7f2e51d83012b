// The ONNX forms of the layer operations the exported architectures share. Activations
// are [rows, features] with rows = batch * seq, as in the runtime's layers, so every linear
// layer is one Gemm on the checkpoint's [out, in] weight.
#pragma once

#include <string>

#include "runtime/export/onnx_graph_builder.h"

namespace tessera {

// y = x W^T + b with W = weight `prefix.weight` [out, in] and b = `prefix.bias` [out] (no
// bias when with_bias is false), as kernels::cpu::linear_forward.
std::string add_linear(OnnxGraphBuilder& g, const std::string& x, const std::string& prefix, int64_t in,
                       int64_t out, bool with_bias = true);

// LayerNorm over the last axis with `prefix.weight` and `prefix.bias`, eps 1e-5 as the kernel.
std::string add_layernorm(OnnxGraphBuilder& g, const std::string& x, const std::string& prefix, int64_t width);

// GELU, tanh approximation, from elementary ops: opset 17 has no Gelu (it came in 20).
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x^3 as x * x * x like the kernel.
std::string add_tanh_gelu(OnnxGraphBuilder& g, const std::string& x, const std::string& name);

// Values every block of a decoder reads, computed once from the dynamic sequence length.
struct SequenceValues {
  std::string seq;        // int64 [1]
  std::string positions;  // int64 [seq]: 0, 1, ..., seq - 1
  std::string causal;     // bool [seq, seq]: true where key position > query position
};
SequenceValues add_sequence_values(OnnxGraphBuilder& g, const std::string& tokens);

// Causal softmax attention of q, k, v [batch, heads, seq, head_dim] (scores scaled by
// 1/sqrt(head_dim), masked with -inf as the kernel masks); returns the heads' outputs as rows
// [batch * seq, heads * head_dim], head h at h * head_dim.
std::string add_causal_attention_heads(OnnxGraphBuilder& g, const std::string& q, const std::string& k,
                                       const std::string& v, const SequenceValues& s, int64_t heads,
                                       int64_t head_dim, const std::string& name);

// [batch * seq, width] rows back to [batch, seq, width], the batch and seq of `tokens`.
std::string add_unflatten_rows(OnnxGraphBuilder& g, const std::string& x, const std::string& tokens,
                               int64_t width, const std::string& name);

}  // namespace tessera
