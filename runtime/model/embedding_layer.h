// Token (+ optional learned position) embedding, vocab-parallel across the tp group: each
// rank holds rows [vocab_start, vocab_start + V/tp) of the (padded) table.
#pragma once

#include "runtime/model/layer.h"
#include "runtime/model/tensor_parallel.h"

namespace tessera {

// The vocabulary padded up to a multiple of the tp size; padded rows are never looked up and
// padded logits are excluded from the loss.
int64_t padded_vocab(int64_t vocab, int tp_size);

class EmbeddingLayer : public Layer {
 public:
  // seq_length > 0 adds a learned position embedding "wpe" (GPT); 0 means tokens only (MLP).
  EmbeddingLayer(std::string name, std::string wte_name, int64_t vocab, int64_t width,
                 int64_t seq_length, float init_std, uint64_t seed, TpGroup tp);
  const std::string& name() const override { return name_; }
  Tensor forward(const Tensor& x, const MicrobatchContext& ctx) override;
  Tensor backward(const Tensor& dy, const MicrobatchContext& ctx) override;
  std::vector<Parameter*> parameters() override;
  Parameter* token_table() { return &wte_; }  // for a head tied to it
  int saved_count() const override { return 0; }
  Shape input_shape(int64_t, int64_t) const override { return {}; }
  Shape output_shape(int64_t B, int64_t T) const override { return {tp_.outside_rows(B * T), width_}; }

 private:
  std::string name_;
  int64_t width_, seq_length_, vocab_local_, vocab_start_;
  TpGroup tp_;
  Parameter wte_, wpe_;
};

}  // namespace tessera
