// Tensor-parallel serving: the model's heads split over the ranks of a tp group. Rank 0 runs the
// HTTP server and the scheduler and drives the others: before each batched step it broadcasts
// the step (which KV-cache slot each sequence uses, how long that cache is, the new tokens),
// then every rank runs the same decode() on its shard, all-reducing inside each block. The
// other ranks loop in run_tensor_parallel_worker until rank 0 broadcasts the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/inference/inference_model.h"
#include "runtime/inference/kv_cache.h"
#include "runtime/serving/sequence_model.h"

namespace tessera {

// Rank 0's SequenceModel. Each sequence owns one of max_batch KV-cache slots, on every rank.
class TensorParallelSequenceModel : public SequenceModel {
 public:
  // shard: this rank's (rank 0's) InferenceModel, loaded with the tp group; both must outlive
  // this object.
  TensorParallelSequenceModel(const InferenceModel& shard, Communicator& tp, size_t max_batch);

  int64_t vocab_size() const override { return shard_.vocab_size(); }
  int64_t context_length() const override { return shard_.context_length(); }
  std::unique_ptr<SequenceState> new_sequence() const override;
  Tensor step(const std::vector<SequenceState*>& sequences, const std::vector<std::vector<int32_t>>& new_tokens,
              const std::vector<bool>& every_row) const override;
  // A heartbeat: the workers' wait for the next step never runs into the communicator timeout.
  void idle() const override;
  bool usable() const override { return !failed_; }
  // Tells the workers to return (once; later steps are refused). Call after the loop ended.
  void stop() const;

 private:
  class Slot;
  void broadcast_message(const std::vector<int32_t>& message) const;

  const InferenceModel& shard_;
  Communicator& tp_;
  mutable std::vector<KvCache> caches_;
  mutable std::vector<size_t> free_slots_;
  mutable bool failed_ = false, stopped_ = false;
};

// Ranks 1..tp-1: runs rank 0's steps on this rank's shard until rank 0 stops. Throws when a
// message does not fit this rank's caches (the ranks would have diverged) or a collective fails.
void run_tensor_parallel_worker(const InferenceModel& shard, Communicator& tp, size_t max_batch);

}  // namespace tessera
