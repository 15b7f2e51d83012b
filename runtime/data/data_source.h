// Where the Trainer gets its batches: a DataSource returns the tokens and targets of a range
// of samples of a step's global batch. Asking by (step, global sample index) rather than
// "the next batch" is what keeps a run independent of its layout: dp ranks, microbatch sizes
// and pipeline stages all ask for the same samples by the same numbers, and a resumed run
// asks for the same batches again. DatasetSource is the built-in one (a Dataset sampled by
// BatchSampler); an embedding program can pass its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "runtime/data/batch_sampler.h"
#include "runtime/data/dataset.h"
#include "runtime/data/vocabulary.h"

namespace tessera {

enum class Split { Train, Validation };

struct BatchRequest {
  Split split = Split::Train;
  // Train: the optimizer step (0-based) whose global batch this is. Validation: always 0,
  // the validation stream is fixed.
  int64_t step = 0;
  // Samples [first, first + count) of that global batch (of the validation stream), each
  // seq_length tokens. These four numbers alone should decide the batch.
  int64_t first = 0;
  int64_t count = 0;
  int64_t seq_length = 0;
  // Who asks, for sources that shard their input by replica (the batch then depends on the
  // layout). Every pipeline stage of a replica asks for the same samples.
  int dp_rank = 0, dp_size = 1;
  int microbatch = 0;  // this rank's microbatch index within the step
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  // The token ids' vocabulary: its size sizes the embedding and head; it is saved with
  // checkpoints and compared on resume.
  virtual Vocabulary vocabulary() const = 0;
  // Whether batch() serves Split::Validation (Trainer::evaluate needs it).
  virtual bool has_validation() const = 0;
  // I32 tokens and targets [count, seq_length]; targets[i] is the token after tokens[i].
  // Ids must be in [0, vocabulary().size()).
  virtual Batch batch(const BatchRequest& request) = 0;
};

// The built-in source: a Dataset's train and val token streams, each sample a window at an
// offset hashed from (seed, split, step, index) (BatchSampler).
class DatasetSource : public DataSource {
 public:
  // data is borrowed and must outlive the source.
  DatasetSource(const Dataset& data, int64_t seq_length, uint64_t seed);
  Vocabulary vocabulary() const override { return data_.vocab; }
  bool has_validation() const override { return val_.has_value(); }
  Batch batch(const BatchRequest& request) override;

 private:
  const Dataset& data_;
  BatchSampler train_;
  std::optional<BatchSampler> val_;
};

// Checks a batch a source returned against its request and vocabulary size: one InputError
// line naming the request and the rule.
void check_batch(const Batch& batch, const BatchRequest& request, int64_t vocab_size);

}  // namespace tessera
