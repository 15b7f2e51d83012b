// DatasetSource and the check of a source's batches.
#include "runtime/data/data_source.h"

#include "core/error.h"

namespace tessera {

DatasetSource::DatasetSource(const Dataset& data, int64_t seq_length, uint64_t seed)
    : data_(data), train_(&data.train, seq_length, seed) {
  if (!data.val.empty()) val_.emplace(&data.val, seq_length, seed, kValStream);
}

Batch DatasetSource::batch(const BatchRequest& r) {
  TESSERA_CHECK(r.seq_length == train_.seq_length(), "batch of seq_length {} from a source made for {}",
                r.seq_length, train_.seq_length());
  if (r.split == Split::Train) return train_.sample(r.step, r.first, r.count);
  TESSERA_CHECK(val_.has_value(), "no validation split to sample from");
  return val_->sample(r.step, r.first, r.count);
}

void check_batch(const Batch& b, const BatchRequest& r, int64_t vocab_size) {
  const char* split = r.split == Split::Train ? "train" : "validation";
  const Shape want{r.count, r.seq_length};
  for (const Tensor* t : {&b.tokens, &b.targets}) {
    TESSERA_REQUIRE(t->defined() && t->dtype() == DType::I32 && t->shape() == want,
                    "data source: the {} batch of step {}, samples [{}, {}) must be I32 tokens and targets of shape "
                    "{}, got {}", split, r.step, r.first, r.first + r.count, shape_string(want),
                    t->defined() ? shape_string(t->shape()) : "none");
    const int32_t* ids = t->i32();
    for (int64_t i = 0; i < t->numel(); ++i) {
      TESSERA_REQUIRE(ids[i] >= 0 && ids[i] < vocab_size,
                      "data source: the {} batch of step {}, samples [{}, {}) holds token {}, outside the "
                      "vocabulary [0, {})", split, r.step, r.first, r.first + r.count, ids[i], vocab_size);
    }
  }
}

}  // namespace tessera
