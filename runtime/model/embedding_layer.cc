// Vocab-parallel token embedding plus position embedding (fp32 lookups in every precision).
#include "runtime/model/embedding_layer.h"

#include "runtime/compute/compute.h"

namespace tessera {

int64_t padded_vocab(int64_t vocab, int tp_size) { return (vocab + tp_size - 1) / tp_size * tp_size; }

EmbeddingLayer::EmbeddingLayer(std::string name, std::string wte_name, int64_t vocab, int64_t width,
                               int64_t seq_length, float init_std, uint64_t seed, TpGroup tp)
    : name_(std::move(name)), width_(width), seq_length_(seq_length), tp_(tp) {
  const int64_t vpad = padded_vocab(vocab, tp.size);
  vocab_local_ = vpad / tp.size;
  vocab_start_ = vocab_local_ * tp.rank;
  wte_ = make_parameter(wte_name, {vpad, width}, ShardSpec::split(0), tp.rank, tp.size, init_std,
                        0.f, seed, true);
  if (seq_length_ > 0) {
    wpe_ = make_parameter("wpe.weight", {seq_length, width}, ShardSpec::replicated(), tp.rank, tp.size,
                          init_std, 0.f, seed, true);
  }
}

Tensor EmbeddingLayer::forward(const Tensor&, const MicrobatchContext& ctx) {
  const int64_t B = ctx.tokens.dim(0), T = ctx.tokens.dim(1), N = B * T;
  const Compute& m = ctx.math();
  Backend& ops = m.ops();
  Tensor out = m.empty({N, width_});
  ops.token_embedding_forward(out, ctx.tokens.view({N}), wte_.value, vocab_start_);
  if (seq_length_ > 0 && tp_.rank == 0) {
    // Added by one rank only: the reduction below sums it into every rank's rows once.
    TESSERA_CHECK(T <= seq_length_, "sequence of {} tokens exceeds seq_length {}", T, seq_length_);
    ops.position_embedding_forward(out, wpe_.value, B, T);
  }
  // Each rank looked up only its vocabulary shard; the sum over ranks is the full lookup
  // (reduce-scattered into row shards with sequence parallelism).
  return exit_tp_region_forward(out, tp_);
}

Tensor EmbeddingLayer::backward(const Tensor& dy, const MicrobatchContext& ctx) {
  const int64_t B = ctx.tokens.dim(0), T = ctx.tokens.dim(1);
  Backend& ops = ctx.math().ops();
  const Tensor d = exit_tp_region_backward(dy, tp_);
  ops.token_embedding_backward(wte_.grad, d, ctx.tokens.view({B * T}), vocab_start_);
  // Every rank holds the full gradient here, so the replicated wpe gets the same grad on all.
  if (seq_length_ > 0) ops.position_embedding_backward(wpe_.grad, d, B, T);
  return Tensor();
}

std::vector<Parameter*> EmbeddingLayer::parameters() {
  if (seq_length_ > 0) return {&wte_, &wpe_};
  return {&wte_};
}

}  // namespace tessera
