// Tests of the server's batching without a checkpoint: the request queue, the continuous
// batch scheduler and the decode loop thread, on a scripted model whose logits are a function
// of each sequence's own tokens only.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/error.h"
#include "runtime/serving/batch_scheduler.h"
#include "runtime/serving/decode_loop.h"
#include "runtime/serving/request_queue.h"

using namespace tessera;

namespace {

constexpr int64_t kVocab = 11;

struct ScriptedSequence : SequenceState {
  std::vector<int32_t> tokens;
};

// Greedy decoding follows last token + 1 (mod vocab); sampled decoding sees logits that mix
// the whole history, so a sequence fed someone else's tokens would diverge. Records what each
// step was fed. A token equal to `poison` makes the step throw.
class ScriptedModel : public SequenceModel {
 public:
  int64_t vocab_size() const override { return kVocab; }
  int64_t context_length() const override { return 32; }
  std::unique_ptr<SequenceState> new_sequence() const override { return std::make_unique<ScriptedSequence>(); }
  Tensor step(const std::vector<SequenceState*>& sequences, const std::vector<std::vector<int32_t>>& new_tokens,
              const std::vector<bool>& every_row) const override {
    std::unique_lock<std::mutex> lock(mutex_);
    gate_.wait(lock, [&] { return open_; });
    std::vector<size_t> fed;
    std::vector<float> rows;
    for (size_t i = 0; i < sequences.size(); ++i) {
      auto& seq = static_cast<ScriptedSequence&>(*sequences[i]);
      for (size_t k = 0; k < new_tokens[i].size(); ++k) {
        if (new_tokens[i][k] == poison) throw std::runtime_error("poisoned token");
        seq.tokens.push_back(new_tokens[i][k]);
        if (every_row[i] || k + 1 == new_tokens[i].size()) append_row(seq.tokens, rows);
      }
      fed.push_back(new_tokens[i].size());
    }
    steps.push_back(fed);
    Tensor logits = Tensor::empty({static_cast<int64_t>(rows.size()) / kVocab, kVocab});
    std::copy(rows.begin(), rows.end(), logits.f32());
    return logits;
  }
  // The logits after `tokens`: a hash of them, with last token + 1 the largest.
  static void append_row(const std::vector<int32_t>& tokens, std::vector<float>& rows) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t t : tokens) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ull;
    for (int64_t v = 0; v < kVocab; ++v) rows.push_back(static_cast<float>((h >> (v % 32)) & 7) * 0.25f);
    rows[rows.size() - kVocab + (tokens.back() + 1) % kVocab] = 2.0f;
  }
  void set_open(bool open) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      open_ = open;
    }
    gate_.notify_all();
  }

  mutable std::vector<std::vector<size_t>> steps;  // per step: tokens fed to each sequence
  int32_t poison = -1;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable gate_;
  bool open_ = true;
};

PendingRequest pending(std::vector<int32_t> prompt, int64_t max_tokens, float temperature = 0.0f, uint64_t seed = 1) {
  PendingRequest p;
  p.request.prompt = std::move(prompt);
  p.request.max_tokens = max_tokens;
  p.request.sampling.temperature = temperature;
  p.request.seed = seed;
  p.submitted = std::chrono::steady_clock::now();
  return p;
}

// Runs one request alone to completion.
std::vector<int32_t> run_alone(PendingRequest p) {
  ScriptedModel model;
  BatchScheduler scheduler(model, 1);
  auto result = p.promise.get_future();
  scheduler.admit(std::move(p));
  while (scheduler.active() > 0) scheduler.step();
  return result.get().tokens;
}

}  // namespace

TEST_CASE("serving: the first step feeds the prompt, later ones the last token", "[serving]") {
  ScriptedModel model;
  BatchScheduler scheduler(model, 4);
  PendingRequest p = pending({3, 4, 5}, 4);
  auto result = p.promise.get_future();
  scheduler.admit(std::move(p));
  while (scheduler.active() > 0) scheduler.step();
  const CompletionResult r = result.get();
  CHECK(r.status == CompletionStatus::Finished);
  CHECK(r.tokens == std::vector<int32_t>{6, 7, 8, 9});
  CHECK(model.steps == std::vector<std::vector<size_t>>{{3}, {1}, {1}, {1}});
  CHECK(r.prefill_ms >= 0.0);
  CHECK(r.decode_ms >= 0.0);
}

TEST_CASE("serving: requests join between steps and leave when done", "[serving]") {
  ScriptedModel model;
  BatchScheduler scheduler(model, 2);
  PendingRequest a = pending({1}, 3), b = pending({2, 2}, 1), c = pending({7, 7, 7}, 2);
  auto ra = a.promise.get_future(), rb = b.promise.get_future(), rc = c.promise.get_future();
  scheduler.admit(std::move(a));
  scheduler.admit(std::move(b));
  CHECK(scheduler.free_slots() == 0);
  CHECK_THROWS_AS(scheduler.admit(pending({1}, 1)), Error);
  CHECK(scheduler.step() == 2);  // a and b prefill together; b is done
  CHECK(scheduler.active() == 1);
  scheduler.admit(std::move(c));
  CHECK(scheduler.step() == 2);  // a decodes one token, c prefills, in one call
  CHECK(scheduler.step() == 2);  // a and c finish
  CHECK(scheduler.step() == 0);
  CHECK(model.steps == std::vector<std::vector<size_t>>{{1, 2}, {1, 3}, {1, 1}});
  CHECK(ra.get().tokens == std::vector<int32_t>{2, 3, 4});
  CHECK(rb.get().tokens == std::vector<int32_t>{3});
  CHECK(rc.get().tokens == std::vector<int32_t>{8, 9});
}

TEST_CASE("serving: a seeded request samples the same tokens alone or in any batch", "[serving]") {
  const std::vector<int32_t> alone = run_alone(pending({4, 1}, 12, 2.0f, 42));
  CHECK(alone != run_alone(pending({4, 1}, 12, 2.0f, 43)));  // the seed matters...
  ScriptedModel model;
  BatchScheduler scheduler(model, 3);
  PendingRequest other1 = pending({2}, 5, 1.0f, 1), target = pending({4, 1}, 12, 2.0f, 42);
  auto result = target.promise.get_future();
  scheduler.admit(std::move(other1));
  scheduler.step();
  scheduler.admit(std::move(target));
  scheduler.admit(pending({9, 9, 9}, 20, 1.5f, 42));  // same seed, other prompt
  while (scheduler.active() > 0) scheduler.step();
  CHECK(result.get().tokens == alone);  // ...the batch does not
}

TEST_CASE("serving: a request that does not fit the context is not admitted", "[serving]") {
  ScriptedModel model;
  BatchScheduler scheduler(model, 2);
  PendingRequest p = pending(std::vector<int32_t>(30, 1), 3);
  CHECK_THROWS_AS(scheduler.admit(std::move(p)), Error);
  CHECK(scheduler.active() == 0);
  p.promise.set_value({});  // still answerable after the refusal
}

TEST_CASE("serving: the request queue refuses when full or closed, and keeps arrival order", "[serving]") {
  RequestQueue queue(2);
  CHECK_THROWS_AS(RequestQueue(0), InputError);
  CompletionRequest r;
  r.prompt = {1};
  r.seed = 1;
  CHECK(queue.submit(r).accepted());
  r.seed = 2;
  CHECK(queue.submit(r).accepted());
  CHECK(queue.submit(r).refusal == "the request queue is full (2 waiting); retry later");
  auto first = queue.take(1, false);
  REQUIRE(first.size() == 1);
  CHECK(first[0].request.seed == 1);
  queue.close();
  CHECK(queue.submit(r).refusal == "the server is shutting down");
  CHECK(queue.take(5, true).size() == 1);  // closed: returns what is left without blocking
  CHECK(queue.take(5, true).empty());
}

TEST_CASE("serving: the decode loop batches concurrent requests like sequential ones", "[serving]") {
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 6; ++i) expected.push_back(run_alone(pending({i, i + 1}, 3 + i, 1.0f, 100 + i)));
  ScriptedModel model;
  RequestQueue queue(16);
  model.set_open(false);  // hold the first step until every request is queued
  DecodeLoop loop(model, queue, 3);
  std::vector<std::future<CompletionResult>> results;
  for (int i = 0; i < 6; ++i) {
    CompletionRequest r;
    r.prompt = {i, i + 1};
    r.max_tokens = 3 + i;
    r.sampling.temperature = 1.0f;
    r.seed = 100 + i;
    results.push_back(queue.submit(r).result);
  }
  model.set_open(true);
  for (int i = 0; i < 6; ++i) {
    const CompletionResult r = results[i].get();
    CHECK(r.status == CompletionStatus::Finished);
    CHECK(r.tokens == expected[i]);
  }
  loop.shutdown();
  size_t widest = 0;
  for (const auto& fed : model.steps) widest = std::max(widest, fed.size());
  CHECK(widest == 3);
  CHECK(loop.completed() == 6);
  CHECK(loop.steps() == model.steps.size());
}

TEST_CASE("serving: shutdown finishes running requests and rejects queued ones", "[serving]") {
  ScriptedModel model;
  RequestQueue queue(4);
  DecodeLoop loop(model, queue, 1);
  model.set_open(false);
  CompletionRequest r;
  r.prompt = {1};
  r.max_tokens = 3;
  auto running = queue.submit(r).result;
  while (loop.active() == 0) std::this_thread::yield();  // admitted, its step held at the gate
  auto queued1 = queue.submit(r).result, queued2 = queue.submit(r).result;
  std::thread stopper([&] { loop.shutdown(); });
  while (!queue.closed()) std::this_thread::yield();
  CHECK(queue.submit(r).refusal == "the server is shutting down");
  model.set_open(true);
  stopper.join();
  CHECK(running.get().status == CompletionStatus::Finished);
  for (auto* f : {&queued1, &queued2}) {
    const CompletionResult q = f->get();
    CHECK(q.status == CompletionStatus::Rejected);
    CHECK(q.error == "the server shut down before the request started");
  }
}

TEST_CASE("serving: a failing model step fails its batch, and the loop goes on", "[serving]") {
  ScriptedModel model;
  model.poison = 5;
  RequestQueue queue(4);
  DecodeLoop loop(model, queue, 4);
  CompletionRequest bad;
  bad.prompt = {2};
  bad.max_tokens = 6;  // generates 3, 4, 5 greedily: feeding 5 throws
  bad.sampling.temperature = 0.0f;
  const CompletionResult failed = queue.submit(bad).result.get();
  CHECK(failed.status == CompletionStatus::Failed);
  CHECK(failed.error == "the model step failed: poisoned token");
  CompletionRequest good;
  good.prompt = {7};
  good.max_tokens = 2;
  good.sampling.temperature = 0.0f;
  const CompletionResult ok = queue.submit(good).result.get();
  CHECK(ok.status == CompletionStatus::Finished);
  CHECK(ok.tokens == std::vector<int32_t>{8, 9});
}

TEST_CASE("serving: a token callback stops or cancels its sequence, and sees logprobs when asked", "[serving]") {
  ScriptedModel model;
  BatchScheduler scheduler(model, 4);
  std::vector<int64_t> seen;
  PendingRequest stop = pending({1}, 10);
  stop.request.logprobs = 2;
  stop.request.on_token = [&seen](const TokenEvent& e) {
    seen.push_back(e.index);
    REQUIRE(e.logprobs != nullptr);
    CHECK(e.logprobs->chosen.token == e.token);
    CHECK(e.logprobs->top.size() == 2);
    CHECK(e.logprobs->top[0].token == e.token);  // greedy: the chosen token is the likeliest
    return e.token == 4 ? TokenVerdict::Stop : TokenVerdict::Continue;
  };
  PendingRequest cancel = pending({6}, 10);
  cancel.request.on_token = [](const TokenEvent& e) { return e.index == 1 ? TokenVerdict::Cancel : TokenVerdict::Continue; };
  auto stopped = stop.promise.get_future(), cancelled = cancel.promise.get_future();
  scheduler.admit(std::move(stop));
  scheduler.admit(std::move(cancel));
  while (scheduler.active() > 0) scheduler.step();
  const CompletionResult s = stopped.get(), c = cancelled.get();
  CHECK(s.tokens == std::vector<int32_t>{2, 3, 4});
  CHECK(s.finish_reason == FinishReason::Stop);
  CHECK(s.logprobs.size() == 3);
  CHECK(seen == std::vector<int64_t>{0, 1, 2});
  CHECK(c.tokens == std::vector<int32_t>{7, 8});
  CHECK(c.finish_reason == FinishReason::Cancelled);
  CHECK(c.logprobs.empty());
  CHECK(s.first_token_ms >= 0.0);
}

TEST_CASE("serving: submit_all queues every sequence of a request or none", "[serving]") {
  RequestQueue queue(3);
  CompletionRequest r;
  r.prompt = {1};
  CHECK(queue.submit_all({r, r}).results.size() == 2);
  const auto refused = queue.submit_all({r, r});
  CHECK(refused.refusal == "the request queue has no room for 2 sequences (2 of 3 waiting); retry later");
  CHECK(refused.results.empty());
  CHECK(queue.size() == 2);
  CHECK(queue.submit_all({r}).accepted());
}

namespace {

struct CountingObserver : ServingObserver {
  void on_step(size_t sequences, size_t capacity) override { stepped.push_back(sequences * 100 / capacity); }
  void on_first_token(double seconds) override { first.push_back(seconds); }
  void on_next_token(double seconds) override { next.push_back(seconds); }
  std::vector<size_t> stepped;
  std::vector<double> first, next;
};

// Steps normally until `broken` is set; then every step throws and the model is unusable.
class BreakingModel : public ScriptedModel {
 public:
  Tensor step(const std::vector<SequenceState*>& sequences, const std::vector<std::vector<int32_t>>& new_tokens,
              const std::vector<bool>& every_row) const override {
    if (broken) throw std::runtime_error("rank 1 is gone");
    return ScriptedModel::step(sequences, new_tokens, every_row);
  }
  bool usable() const override { return !broken; }
  std::atomic<bool> broken{false};
};

}  // namespace

TEST_CASE("serving: the observer sees each step's occupancy and every token's latency", "[serving]") {
  ScriptedModel model;
  CountingObserver observer;
  BatchScheduler scheduler(model, 4, &observer);
  scheduler.admit(pending({1}, 3));
  scheduler.admit(pending({2}, 1));
  while (scheduler.active() > 0) scheduler.step();
  CHECK(observer.stepped == std::vector<size_t>{50, 25, 25});
  CHECK(observer.first.size() == 2);
  CHECK(observer.next.size() == 2);
}

TEST_CASE("serving: shutdown's deadline cuts off running sequences with Rejected", "[serving]") {
  ScriptedModel model;
  RequestQueue queue(4);
  DecodeLoop loop(model, queue, 1);
  model.set_open(false);
  CompletionRequest r;
  r.prompt = {1};
  r.max_tokens = 20;
  auto running = queue.submit(r).result;
  while (loop.active() == 0) std::this_thread::yield();
  loop.begin_shutdown(std::chrono::steady_clock::now());  // the deadline has passed already
  model.set_open(true);
  const CompletionResult result = running.get();
  CHECK(result.status == CompletionStatus::Rejected);
  CHECK(result.error == "the server's shutdown deadline passed before the request finished");
  loop.shutdown();
  CHECK(loop.fatal_error().empty());
}

TEST_CASE("serving: a model that can no longer step ends the loop with its error", "[serving]") {
  BreakingModel model;
  RequestQueue queue(4);
  DecodeLoop loop(model, queue, 2);
  CompletionRequest r;
  r.prompt = {1};
  r.max_tokens = 2;
  CHECK(queue.submit(r).result.get().status == CompletionStatus::Finished);
  model.broken = true;
  const CompletionResult failed = queue.submit(r).result.get();
  CHECK(failed.status == CompletionStatus::Failed);
  CHECK(failed.error == "the model step failed: rank 1 is gone");
  while (!loop.ended()) std::this_thread::yield();
  CHECK(loop.fatal_error() == "rank 1 is gone");
  CHECK(queue.submit(r).refusal == "the server is shutting down");
}

TEST_CASE("serving: prompt logprobs come from the prefill's rows, and max_tokens 0 scores the prompt only",
          "[serving]") {
  ScriptedModel model;
  BatchScheduler scheduler(model, 4);
  PendingRequest scored = pending({3, 5, 9}, 0);
  scored.request.logprobs = 1;
  scored.request.prompt_logprobs = true;
  PendingRequest both = pending({3, 5, 9}, 2);
  both.request.logprobs = 0;
  both.request.prompt_logprobs = true;
  const std::vector<TokenLogprobs>* seen = nullptr;
  both.request.on_token = [&seen](const TokenEvent& e) {
    if (e.index == 0) seen = e.prompt_logprobs;
    return TokenVerdict::Continue;
  };
  PendingRequest plain = pending({4}, 2);  // its one row per step sits between the others'
  auto f_scored = scored.promise.get_future(), f_both = both.promise.get_future(), f_plain = plain.promise.get_future();
  scheduler.admit(std::move(scored));
  scheduler.admit(std::move(plain));
  scheduler.admit(std::move(both));
  while (scheduler.active() > 0) scheduler.step();
  // The expected logprob of prompt token j: from the logits after tokens 0..j-1.
  std::vector<float> rows;
  ScriptedModel::append_row({3}, rows);
  ScriptedModel::append_row({3, 5}, rows);
  const CompletionResult s = f_scored.get(), b = f_both.get(), p = f_plain.get();
  CHECK(s.tokens.empty());
  REQUIRE(s.prompt_logprobs.size() == 2);
  CHECK(s.prompt_logprobs[0].chosen.logprob == token_logprobs(rows.data(), kVocab, 5, 1).chosen.logprob);
  CHECK(s.prompt_logprobs[1].chosen.logprob == token_logprobs(rows.data() + kVocab, kVocab, 9, 1).chosen.logprob);
  CHECK(s.prompt_logprobs[1].top.size() == 1);
  CHECK(b.tokens == std::vector<int32_t>{10, 0});  // sampling still uses the last row
  CHECK(b.prompt_logprobs.size() == 2);
  CHECK(seen != nullptr);
  CHECK(p.tokens == std::vector<int32_t>{5, 6});
  CHECK(p.prompt_logprobs.empty());
}
