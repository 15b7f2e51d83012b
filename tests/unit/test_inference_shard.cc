// Tensor-parallel inference without MPI: the tiny GPT split by heads over 2 "ranks" run as two
// threads whose all-reduce meets in memory. The shards' decode must give the unsharded model's
// logits, and loading must refuse a split the heads do not allow.
#include <catch2/catch.hpp>

#include <barrier>
#include <thread>

#include "core/error.h"
#include "runtime/comm/communicator.h"
#include "runtime/inference/decode.h"
#include "runtime/inference/inference_model.h"
#include "runtime/inference/kv_cache.h"
#include "tests/unit/checkpoint_test_util.h"
#include "tests/unit/test_inference_util.h"

using namespace tessera;
using namespace tessera::inference_test;
using tessera::ckpt_test::TempDir;

namespace {

// Both ranks' buffers, summed at a barrier: the only collective tensor-parallel decode uses.
struct SharedSum {
  explicit SharedSum(int ranks) : arrive(ranks), buffers(ranks, nullptr) {}
  std::barrier<> arrive;
  std::vector<Tensor*> buffers;
};

class ThreadCommunicator : public Communicator {
 public:
  ThreadCommunicator(SharedSum& shared, int rank) : shared_(shared), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(shared_.buffers.size()); }
  const std::string& name() const override { return name_; }
  void set_step(int64_t) override {}
  CommTraffic traffic() const override { return {}; }
  void all_reduce(Tensor& t, ReduceOp op) override {
    REQUIRE(op == ReduceOp::Sum);
    shared_.buffers[rank_] = &t;
    shared_.arrive.arrive_and_wait();
    Tensor sum = shared_.buffers[0]->clone();
    for (size_t r = 1; r < shared_.buffers.size(); ++r) {
      for (int64_t i = 0; i < sum.numel(); ++i) sum.f32()[i] += shared_.buffers[r]->f32()[i];
    }
    shared_.arrive.arrive_and_wait();  // every rank has read every buffer
    t.copy_from(sum);
  }
  std::unique_ptr<CommRequest> all_reduce_async(Tensor&, ReduceOp) override { throw Error("not used"); }
  void all_gather(const Tensor&, Tensor&) override { throw Error("not used"); }
  void reduce_scatter(const Tensor&, Tensor&, ReduceOp) override { throw Error("not used"); }
  std::unique_ptr<CommRequest> all_gather_async(const Tensor&, Tensor&) override { throw Error("not used"); }
  std::unique_ptr<CommRequest> reduce_scatter_async(const Tensor&, Tensor&, ReduceOp) override {
    throw Error("not used");
  }
  void broadcast(Tensor&, int) override { throw Error("not used"); }
  std::unique_ptr<CommRequest> send(const Tensor&, int, int) override { throw Error("not used"); }
  std::unique_ptr<CommRequest> recv(Tensor&, int, int) override { throw Error("not used"); }
  void barrier() override { shared_.arrive.arrive_and_wait(); }
  std::unique_ptr<Communicator> split(int, int, const std::string&) override { throw Error("not used"); }

 private:
  SharedSum& shared_;
  int rank_;
  std::string name_ = "tp";
};

}  // namespace

TEST_CASE("inference: a model split by heads over 2 ranks decodes the unsharded logits", "[inference]") {
  TempDir dir;
  const std::string step = save_tiny_checkpoint(dir.path, 2, 1);
  const InferenceModel whole = InferenceModel::load(step);
  const int64_t V = whole.vocab_size();
  const std::vector<std::vector<int32_t>> prompts = {{3, 1, 4, 1, 5}, {9, 2}}, next = {{6}, {7}};
  KvCache c0(whole), c1(whole);
  decode(whole, {&c0, &c1}, prompts);
  const Tensor want = decode(whole, {&c0, &c1}, next);

  SharedSum shared(2);
  Tensor got;
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      ThreadCommunicator comm(shared, r);
      const InferenceModel shard = InferenceModel::load(step, TpGroup{&comm, r, 2});
      CHECK(shard.num_heads() == whole.num_heads() / 2);
      CHECK(shard.blocks()[0].fc_w.dim(0) == whole.blocks()[0].fc_w.dim(0) / 2);
      CHECK(shard.parameters() == whole.parameters());
      KvCache s0(shard), s1(shard);
      CHECK(s0.keys(0) != nullptr);
      decode(shard, {&s0, &s1}, prompts);
      Tensor logits = decode(shard, {&s0, &s1}, next);
      if (r == 0) got = logits;
      if (r == 1) CHECK_FALSE(logits.defined());  // only rank 0 computes the head
    });
  }
  for (auto& t : ranks) t.join();
  REQUIRE(got.shape() == Shape{2, V});
  CHECK(relative_error(got.f32(), want.f32(), 2 * V) <= 1e-5);
}

TEST_CASE("inference: a split the heads do not divide is refused", "[inference]") {
  TempDir dir;
  const std::string step = save_tiny_checkpoint(dir.path, 1, 1);
  SharedSum shared(3);
  ThreadCommunicator comm(shared, 0);
  CHECK_THROWS_WITH(InferenceModel::load(step, TpGroup{&comm, 0, 3}),
                    Catch::Matchers::Contains("--tp 3: the model's 4 attention heads and MLP width 64 must divide by it"));
}
