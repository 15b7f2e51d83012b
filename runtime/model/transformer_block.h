// A pre-LayerNorm GPT block, Megatron-style tensor parallel:
//   x = x + c_proj(attn(c_attn(ln_1(x))))   c_attn column-parallel (heads split), c_proj row-parallel
//   x = x + mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))   c_fc column-parallel, c_proj row-parallel
// LayerNorms and the row-parallel biases are replicated.
#pragma once

#include "runtime/model/layer.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

struct BlockShape {
  int64_t hidden = 0, heads = 0, ffn = 0;
  // Width of one head; 0 means hidden / heads. Pruned heads leave heads * head_dim < hidden.
  int64_t head_dim = 0;
};

// What a block computed inside its tensor-parallel regions for one microbatch (this rank's
// shard): the attention output before c_proj, [N, heads_local * head_dim], head after head,
// and the MLP activation gelu(c_fc(.)) [N, ffn_local]. Importance scores for pruning.
struct BlockActivations {
  Tensor attention, mlp;
};

class TransformerBlock : public Layer {
 public:
  // recompute_attention: keep q, k, v but not the [B, H, T, T] softmax, recomputed in backward
  // (Megatron's selective recomputation: the largest activation for the least compute).
  TransformerBlock(std::string name, BlockShape shape, int num_layers, float init_std,
                   uint64_t seed, TpGroup tp, bool recompute_attention = false);
  const std::string& name() const override { return name_; }
  Tensor forward(const Tensor& x, const MicrobatchContext& ctx) override;
  Tensor backward(const Tensor& dy, const MicrobatchContext& ctx) override;
  std::vector<Parameter*> parameters() override;
  // Takes the activations that a forward with ctx.training = true saved for `microbatch`,
  // in place of a backward (pruning calibration).
  BlockActivations take_activations(int microbatch);
  int saved_count() const override { return stash_.size(); }
  Shape input_shape(int64_t B, int64_t T) const override { return {tp_.outside_rows(B * T), shape_.hidden}; }
  Shape output_shape(int64_t B, int64_t T) const override { return input_shape(B, T); }

 private:
  struct Saved {
    int64_t B = 0, T = 0;
    // ln1, ln2, att and act are GEMM inputs, held in the compute dtype; probs is the backend's attention state.
    Tensor x, ln1, mean1, rstd1, qkv, probs, att, x2, ln2, mean2, rstd2, fc, act;
  };
  std::string name_;
  BlockShape shape_;
  int64_t head_dim_, heads_local_, attn_local_, ffn_local_;  // attn_local_ = heads_local_ * head_dim_
  TpGroup tp_;
  bool recompute_attention_;
  Parameter ln1_w_, ln1_b_, qkv_w_, qkv_b_, attn_proj_w_, attn_proj_b_;
  Parameter ln2_w_, ln2_b_, fc_w_, fc_b_, mlp_proj_w_, mlp_proj_b_;
  ActivationStash<Saved> stash_;
};

}  // namespace tessera
