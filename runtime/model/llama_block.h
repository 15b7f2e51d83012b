// A Llama decoder block (pre-RMSNorm, rotary attention with grouped key/value heads, SwiGLU
// MLP, no biases), Megatron-style tensor parallel:
//   x = x + o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))),  n = input_layernorm(x)
//   x = x + down_proj(silu(gate_proj(n)) * up_proj(n)),                   n = post_attention_layernorm(x)
// q/k/v and gate/up are column-parallel (query heads and key/value groups split over tp, which
// must divide both), o_proj and down_proj row-parallel; the norms are replicated.
#pragma once

#include "runtime/model/layer.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

class Backend;
class Compute;

struct LlamaShape {
  int64_t hidden = 0, heads = 0, groups = 0, head_dim = 0, ffn = 0;
  float rotary_base = 10000.f;
  float norm_eps = 1e-5f;
};

class LlamaBlock : public Layer {
 public:
  // recompute_attention: as TransformerBlock, drop the [B, H, T, T] softmax after forward and
  // recompute it in backward.
  LlamaBlock(std::string name, LlamaShape shape, float init_std, uint64_t seed, TpGroup tp,
             bool recompute_attention = false);
  const std::string& name() const override { return name_; }
  Tensor forward(const Tensor& x, const MicrobatchContext& ctx) override;
  Tensor backward(const Tensor& dy, const MicrobatchContext& ctx) override;
  std::vector<Parameter*> parameters() override;
  int saved_count() const override { return stash_.size(); }
  Shape input_shape(int64_t B, int64_t T) const override { return {tp_.outside_rows(B * T), shape_.hidden}; }
  Shape output_shape(int64_t B, int64_t T) const override { return input_shape(B, T); }

 private:
  struct Saved {
    int64_t B = 0, T = 0;
    // n1, n2, att and act are GEMM inputs in the compute dtype; probs is the backend's attention state.
    Tensor x, n1, rstd1, qkv, probs, att, x2, n2, rstd2, gate, up, act;
  };
  Tensor attention_backward(const Compute& m, const Saved& s, const Tensor& datt);
  void rope_tables(Backend& ops, int64_t T);

  std::string name_;
  LlamaShape shape_;
  int64_t heads_local_, groups_local_, ffn_local_;
  TpGroup tp_;
  bool recompute_attention_;
  Parameter norm1_w_, q_w_, k_w_, v_w_, o_w_, norm2_w_, gate_w_, up_w_, down_w_;
  Tensor cos_, sin_;  // rotary tables for the last sequence length seen
  ActivationStash<Saved> stash_;
};

}  // namespace tessera
