// TensorParallelSequenceModel and the worker loop. A step travels as two broadcasts from rank
// 0: a fixed header {kind, sequences, message length}, then the message: per sequence {slot,
// cache length before the step, new tokens}, then all new tokens. A worker checks that its slot
// holds that many tokens (a cache length of 0 starts a new sequence), so a lost or reordered
// step is an error, not silently different text.
#include "runtime/serving/tensor_parallel_model.h"

#include "core/error.h"
#include "runtime/inference/decode.h"

namespace tessera {
namespace {

enum Kind : int32_t { kStep = 0, kIdle = 1, kStop = 2 };

Tensor i32_tensor(const std::vector<int32_t>& values) {
  Tensor t = Tensor::empty({static_cast<int64_t>(values.size())}, DType::I32);
  std::copy(values.begin(), values.end(), t.i32());
  return t;
}

// Runs one decoded message on caches; the logits (rank 0) or an empty tensor.
Tensor run_step(const InferenceModel& shard, std::vector<KvCache>& caches, const int32_t* message, int32_t sequences,
               const std::vector<bool>& every_row = {}) {
  std::vector<KvCache*> batch;
  std::vector<std::vector<int32_t>> tokens;
  const int32_t* next_token = message + 3 * sequences;
  for (int32_t i = 0; i < sequences; ++i) {
    const int32_t slot = message[3 * i], past = message[3 * i + 1], n = message[3 * i + 2];
    TESSERA_CHECK(slot >= 0 && slot < static_cast<int32_t>(caches.size()), "tp step: slot {} outside the {} slots",
                  slot, caches.size());
    KvCache& cache = caches[slot];
    if (past == 0) cache.clear();
    TESSERA_CHECK(cache.length() == past, "tp step: slot {} holds {} tokens, rank 0 says {}: the ranks diverged",
                  slot, cache.length(), past);
    batch.push_back(&cache);
    tokens.emplace_back(next_token, next_token + n);
    next_token += n;
  }
  return decode(shard, batch, tokens, every_row);
}

}  // namespace

class TensorParallelSequenceModel::Slot : public SequenceState {
 public:
  Slot(std::vector<size_t>& free_slots, size_t index) : free_slots_(free_slots), index_(index) {}
  ~Slot() override { free_slots_.push_back(index_); }
  size_t index() const { return index_; }

 private:
  std::vector<size_t>& free_slots_;
  size_t index_;
};

TensorParallelSequenceModel::TensorParallelSequenceModel(const InferenceModel& shard, Communicator& tp,
                                                         size_t max_batch)
    : shard_(shard), tp_(tp) {
  TESSERA_CHECK(tp.rank() == 0, "the tensor-parallel sequence model runs on tp rank 0, not {}", tp.rank());
  for (size_t i = 0; i < max_batch; ++i) {
    caches_.emplace_back(shard);
    free_slots_.push_back(max_batch - 1 - i);
  }
}

std::unique_ptr<SequenceState> TensorParallelSequenceModel::new_sequence() const {
  TESSERA_CHECK(!free_slots_.empty(), "no free KV-cache slot of {}", caches_.size());
  const size_t index = free_slots_.back();
  free_slots_.pop_back();
  caches_[index].clear();
  return std::make_unique<Slot>(free_slots_, index);
}

void TensorParallelSequenceModel::broadcast_message(const std::vector<int32_t>& message) const {
  TESSERA_CHECK(!stopped_, "the tensor-parallel workers were stopped");
  try {
    Tensor header = i32_tensor(message);
    tp_.broadcast(header, 0);
  } catch (...) {
    failed_ = true;
    throw;
  }
}

Tensor TensorParallelSequenceModel::step(const std::vector<SequenceState*>& sequences,
                                         const std::vector<std::vector<int32_t>>& new_tokens,
                                         const std::vector<bool>& every_row) const {
  std::vector<int32_t> message;
  for (size_t i = 0; i < sequences.size(); ++i) {
    const size_t slot = static_cast<const Slot*>(sequences[i])->index();
    message.insert(message.end(), {static_cast<int32_t>(slot), static_cast<int32_t>(caches_[slot].length()),
                                   static_cast<int32_t>(new_tokens[i].size())});
  }
  for (const auto& tokens : new_tokens) message.insert(message.end(), tokens.begin(), tokens.end());
  broadcast_message({kStep, static_cast<int32_t>(sequences.size()), static_cast<int32_t>(message.size())});
  broadcast_message(message);
  try {
    // Which rows come back matters to rank 0's head only: the workers need not know.
    return run_step(shard_, caches_, message.data(), static_cast<int32_t>(sequences.size()), every_row);
  } catch (...) {
    // A step that threw after the broadcast may have left the ranks at different points.
    failed_ = true;
    throw;
  }
}

void TensorParallelSequenceModel::idle() const { broadcast_message({kIdle, 0, 0}); }

void TensorParallelSequenceModel::stop() const {
  if (stopped_ || failed_) return;
  broadcast_message({kStop, 0, 0});
  stopped_ = true;
}

void run_tensor_parallel_worker(const InferenceModel& shard, Communicator& tp, size_t max_batch) {
  TESSERA_CHECK(tp.rank() != 0, "run_tensor_parallel_worker runs on tp ranks 1 and up");
  std::vector<KvCache> caches;
  for (size_t i = 0; i < max_batch; ++i) caches.emplace_back(shard);
  while (true) {
    Tensor header = Tensor::empty({3}, DType::I32);
    tp.broadcast(header, 0);
    const int32_t kind = header.i32()[0];
    if (kind == kStop) return;
    if (kind == kIdle) continue;
    TESSERA_CHECK(kind == kStep, "tp worker: unknown message kind {}", kind);
    Tensor message = Tensor::empty({header.i32()[2]}, DType::I32);
    tp.broadcast(message, 0);
    run_step(shard, caches, message.i32(), header.i32()[1]);
  }
}

}  // namespace tessera
