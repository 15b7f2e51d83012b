// SequenceModel over the inference engine: a KvCache per sequence and the batched decode().
#pragma once

#include "runtime/inference/inference_model.h"
#include "runtime/serving/sequence_model.h"

namespace tessera {

class InferenceSequenceModel : public SequenceModel {
 public:
  explicit InferenceSequenceModel(const InferenceModel& model) : model_(model) {}
  int64_t vocab_size() const override { return model_.vocab_size(); }
  int64_t context_length() const override { return model_.context_length(); }
  std::unique_ptr<SequenceState> new_sequence() const override;
  Tensor step(const std::vector<SequenceState*>& sequences, const std::vector<std::vector<int32_t>>& new_tokens,
              const std::vector<bool>& every_row) const override;

 private:
  const InferenceModel& model_;
};

}  // namespace tessera
