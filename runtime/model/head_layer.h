// The output head and loss: optional final LayerNorm or RMSNorm (ln_f), a vocab-parallel linear
// projection to the logits, and vocab-parallel softmax cross-entropy. The logits are never
// gathered: the row max and the sums of exponentials are all-reduced over the tp group.
#pragma once

#include "runtime/model/layer.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

struct HeadOptions {
  std::string weight_name = "lm_head.weight";
  std::string bias_name;  // empty = no bias
  std::string norm_name;  // empty = no final LayerNorm, else e.g. "ln_f"
  bool rms_norm = false;  // the final norm is an RMSNorm (weight only; llama) instead of a LayerNorm
  float norm_eps = 1e-5f; // RMSNorm's epsilon
};

class HeadLayer : public Layer {
 public:
  HeadLayer(std::string name, HeadOptions options, int64_t vocab, int64_t width, float init_std,
            uint64_t seed, TpGroup tp);
  const std::string& name() const override { return name_; }
  // Returns the mean cross-entropy over the microbatch's rows as a [1] tensor.
  Tensor forward(const Tensor& x, const MicrobatchContext& ctx) override;
  // dy is ignored: the gradient of the loss is ctx.loss_scale.
  Tensor backward(const Tensor& dy, const MicrobatchContext& ctx) override;
  std::vector<Parameter*> parameters() override;
  std::vector<Parameter*> borrowed_parameters() override;
  // Projects with `table` (the vocab-parallel token embedding, same shape and sharding) instead
  // of the head's own weight, which is dropped: tied embeddings. The table's owner lists it.
  void tie_weight(Parameter* table);
  // The head's own table is a copy of the embedding's that lives on another pipeline stage
  // (built under the embedding's name, so with its initial values): see Parameter::tied_replica.
  void mark_tied_replica() { weight_.tied_replica = weight_.tied = true; }
  int saved_count() const override { return stash_.size(); }
  Shape input_shape(int64_t B, int64_t T) const override { return {tp_.outside_rows(B * T), width_}; }
  Shape output_shape(int64_t, int64_t) const override { return {1}; }
  // Logits of this rank's vocabulary shard for the last forward (for tests and generation).
  const Tensor& last_logits() const { return last_logits_; }

 private:
  struct Saved {
    Tensor x, normed, mean, rstd, input, logits, row_max, sum_exp;  // input: all rows, normed
  };
  std::string name_;
  HeadOptions options_;
  int64_t vocab_, width_, vocab_local_, vocab_start_, valid_local_;
  TpGroup tp_;
  Parameter norm_w_, norm_b_, weight_, bias_;
  Parameter* projection_ = &weight_;  // weight_, or the tied embedding table
  ActivationStash<Saved> stash_;
  Tensor last_logits_;
};

}  // namespace tessera
