// Counter-based batch sampling: offsets come from a splitmix64 hash of (seed, stream, step,
// index) rather than from a sequential RNG, so no rank has to draw the others' samples.
#include "runtime/data/batch_sampler.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/splitmix64.h"

namespace tessera {
namespace {


}  // namespace

BatchSampler::BatchSampler(const std::vector<int32_t>* tokens, int64_t seq_length, uint64_t seed,
                           uint64_t stream)
    : tokens_(tokens), seq_length_(seq_length), key_(splitmix64(splitmix64(seed) ^ stream)) {
  TESSERA_CHECK(tokens_ != nullptr, "BatchSampler needs a token stream");
  TESSERA_CHECK(seq_length_ > 0, "seq_length {} must be positive", seq_length_);
  TESSERA_CHECK(static_cast<int64_t>(tokens_->size()) >= seq_length_ + 1,
                "{} tokens cannot fill a sample of seq_length + 1 = {}", tokens_->size(),
                seq_length_ + 1);
}

int64_t BatchSampler::offset(int64_t step, int64_t index) const {
  TESSERA_CHECK(step >= 0 && index >= 0, "negative step {} or index {}", step, index);
  const uint64_t h = splitmix64(splitmix64(key_ ^ static_cast<uint64_t>(step)) ^
                                static_cast<uint64_t>(index));
  const auto starts = static_cast<uint64_t>(static_cast<int64_t>(tokens_->size()) - seq_length_);
  // Multiply-shift maps the hash to [0, starts) without the low-bit bias of a modulo.
  return static_cast<int64_t>((static_cast<unsigned __int128>(h) * starts) >> 64);
}

Batch BatchSampler::sample(int64_t step, int64_t first, int64_t count) const {
  TESSERA_CHECK(first >= 0 && count >= 0, "bad sample range first={} count={}", first, count);
  Batch batch{Tensor::empty({count, seq_length_}, DType::I32),
              Tensor::empty({count, seq_length_}, DType::I32)};
  for (int64_t i = 0; i < count; ++i) {
    const auto source = tokens_->begin() + offset(step, first + i);
    std::copy_n(source, seq_length_, batch.tokens.i32() + i * seq_length_);
    std::copy_n(source + 1, seq_length_, batch.targets.i32() + i * seq_length_);
  }
  return batch;
}

}  // namespace tessera
