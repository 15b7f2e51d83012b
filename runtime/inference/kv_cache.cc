// KvCache: per layer one [context_length, A] buffer each for keys and values.
#include "runtime/inference/kv_cache.h"

#include "runtime/inference/inference_model.h"

namespace tessera {

KvCache::KvCache(const InferenceModel& model) : capacity_(model.context_length()) {
  const Shape shape{capacity_, model.attention_width()};
  for (size_t i = 0; i < model.blocks().size(); ++i) {
    keys_.push_back(Tensor::empty(shape));
    values_.push_back(Tensor::empty(shape));
  }
}

void KvCache::advance(int64_t n) {
  TESSERA_CHECK(n >= 0 && length_ + n <= capacity_, "KV cache: {} + {} tokens exceed its {}", length_, n,
                capacity_);
  length_ += n;
}

}  // namespace tessera
