// The DataSource interface: the built-in DatasetSource, a user source driving the Trainer,
// and the checks on what a source returns.
#include <catch2/catch.hpp>

#include "test_custom_layer_util.h"

using namespace tessera;
using namespace tessera::test;

namespace {

// A user source over the same Dataset, recording what it was asked for.
class RecordingSource : public DataSource {
 public:
  RecordingSource(const Dataset& data, int64_t seq_length, uint64_t seed) : inner_(data, seq_length, seed) {}
  Vocabulary vocabulary() const override { return inner_.vocabulary(); }
  bool has_validation() const override { return with_validation; }
  Batch batch(const BatchRequest& r) override {
    requests.push_back(r);
    Batch b = inner_.batch(r);
    if (corrupt) b.tokens.i32()[0] = 99;
    return b;
  }
  std::vector<BatchRequest> requests;
  bool with_validation = true;
  bool corrupt = false;

 private:
  DatasetSource inner_;
};

}  // namespace

TEST_CASE("DatasetSource samples the train and validation streams like BatchSampler", "[data_source]") {
  const Dataset data = tiny_dataset();
  DatasetSource source(data, 8, 7);
  CHECK(source.has_validation());
  CHECK(source.vocabulary() == Vocabulary::tokens(16));
  const BatchSampler train(&data.train, 8, 7), val(&data.val, 8, 7, kValStream);
  const Batch a = source.batch({Split::Train, 3, 5, 2, 8});
  const Batch b = train.sample(3, 5, 2);
  const Batch v = source.batch({Split::Validation, 0, 4, 2, 8});
  const Batch w = val.sample(0, 4, 2);
  for (int64_t i = 0; i < 16; ++i) {
    CHECK(a.tokens.i32()[i] == b.tokens.i32()[i]);
    CHECK(a.targets.i32()[i] == b.targets.i32()[i]);
    CHECK(v.tokens.i32()[i] == w.tokens.i32()[i]);
  }
  Dataset no_val = data;
  no_val.val.clear();
  CHECK_FALSE(DatasetSource(no_val, 8, 7).has_validation());
}

TEST_CASE("the Trainer reads a user DataSource by step and sample index", "[data_source]") {
  Config c = tiny_trainer_config();
  const Dataset data = tiny_dataset();
  RecordingSource source(data, c.model.seq_length, c.train.seed);
  Trainer builtin(c, data, ParallelGroups{});
  Trainer user(c, source, ParallelGroups{});
  for (int step = 0; step < 2; ++step) CHECK(user.train_step().loss == builtin.train_step().loss);
  REQUIRE(source.requests.size() == 4);  // 2 steps x 2 microbatches
  const BatchRequest& r = source.requests[3];
  CHECK(r.split == Split::Train);
  CHECK(r.step == 1);
  CHECK(r.first == 2);
  CHECK(r.count == 2);
  CHECK(r.seq_length == 8);
  CHECK(r.microbatch == 1);
  CHECK(r.dp_size == 1);
  CHECK(user.evaluate() == builtin.evaluate());
  const BatchRequest& e = source.requests.back();
  CHECK(e.split == Split::Validation);
  CHECK(e.step == 0);
  CHECK(e.first == 2 * (2 * 2 - 1));  // eval_iters 2 x 2 microbatches, the last one
}

TEST_CASE("bad batches and a missing validation split are one-line errors", "[data_source]") {
  Config c = tiny_trainer_config();
  const Dataset data = tiny_dataset();
  RecordingSource source(data, c.model.seq_length, c.train.seed);
  source.with_validation = false;
  Trainer trainer(c, source, ParallelGroups{});
  CHECK_THROWS_WITH(trainer.evaluate(), "Trainer::evaluate: the data source has no validation split");
  source.corrupt = true;
  CHECK_THROWS_WITH(trainer.train_step(), "data source: the train batch of step 0, samples [0, 2) holds token 99, "
                                          "outside the vocabulary [0, 16)");
  const Batch short_batch{Tensor::empty({2, 7}, DType::I32), Tensor::empty({2, 7}, DType::I32)};
  CHECK_THROWS_WITH(check_batch(short_batch, {Split::Validation, 0, 4, 2, 8}, 16),
                    "data source: the validation batch of step 0, samples [4, 6) must be I32 tokens and targets of "
                    "shape [2, 8], got [2, 7]");
}
