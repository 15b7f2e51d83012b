// InferenceSequenceModel: each sequence's state is its KvCache; a step is one decode() call.
#include "runtime/serving/inference_sequence_model.h"

#include "runtime/inference/decode.h"
#include "runtime/inference/kv_cache.h"

namespace tessera {
namespace {

struct CachedSequence : SequenceState {
  explicit CachedSequence(const InferenceModel& model) : cache(model) {}
  KvCache cache;
};

}  // namespace

std::unique_ptr<SequenceState> InferenceSequenceModel::new_sequence() const {
  return std::make_unique<CachedSequence>(model_);
}

Tensor InferenceSequenceModel::step(const std::vector<SequenceState*>& sequences,
                                    const std::vector<std::vector<int32_t>>& new_tokens,
                                    const std::vector<bool>& every_row) const {
  std::vector<KvCache*> caches;
  caches.reserve(sequences.size());
  for (SequenceState* s : sequences) caches.push_back(&static_cast<CachedSequence*>(s)->cache);
  return decode(model_, caches, new_tokens, every_row);
}

}  // namespace tessera
