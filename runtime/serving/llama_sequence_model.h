// SequenceModel over the Llama inference engine: a grouped KV cache per sequence and the
// batched decode (runtime/inference/llama_inference.h), for generate and serve.
#pragma once

#include "runtime/inference/llama_inference.h"
#include "runtime/serving/sequence_model.h"

namespace tessera {

class LlamaSequenceModel : public SequenceModel {
 public:
  explicit LlamaSequenceModel(const LlamaInferenceModel& model) : model_(model) {}
  int64_t vocab_size() const override { return model_.vocab_size(); }
  int64_t context_length() const override { return model_.context_length(); }
  std::unique_ptr<SequenceState> new_sequence() const override;
  Tensor step(const std::vector<SequenceState*>& sequences,
              const std::vector<std::vector<int32_t>>& new_tokens, const std::vector<bool>& every_row) const override;

 private:
  const LlamaInferenceModel& model_;
};

}  // namespace tessera
