// LlamaSequenceModel: each sequence's state is its LlamaKvCache.
#include "runtime/serving/llama_sequence_model.h"

namespace tessera {
namespace {

struct LlamaSequence : SequenceState {
  explicit LlamaSequence(const LlamaInferenceModel& model) : cache(model) {}
  LlamaKvCache cache;
};

}  // namespace

std::unique_ptr<SequenceState> LlamaSequenceModel::new_sequence() const {
  return std::make_unique<LlamaSequence>(model_);
}

Tensor LlamaSequenceModel::step(const std::vector<SequenceState*>& sequences,
                                const std::vector<std::vector<int32_t>>& new_tokens,
                                const std::vector<bool>& every_row) const {
  // The grouped-KV decode returns each sequence's last row only: no prompt log-probabilities.
  for (bool all_rows : every_row) {
    TESSERA_REQUIRE(!all_rows, "llama: log-probabilities of every prompt token (echo with logprobs) are not supported");
  }
  std::vector<LlamaKvCache*> caches;
  for (SequenceState* s : sequences) {
    auto* llama = dynamic_cast<LlamaSequence*>(s);
    TESSERA_CHECK(llama != nullptr, "LlamaSequenceModel: a sequence of another model");
    caches.push_back(&llama->cache);
  }
  return model_.decode(caches, new_tokens);
}

}  // namespace tessera
