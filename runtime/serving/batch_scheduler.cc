// BatchScheduler: admission, the batched step, sampling and retiring finished sequences.
#include "runtime/serving/batch_scheduler.h"

#include <utility>

#include "core/error.h"

namespace tessera {
namespace {

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

BatchScheduler::BatchScheduler(const SequenceModel& model, size_t max_batch)
    : model_(model), max_batch_(max_batch) {
  TESSERA_REQUIRE(max_batch >= 1, "the batch needs room for at least 1 sequence, not {}", max_batch);
}

void BatchScheduler::admit(PendingRequest&& pending) {
  TESSERA_CHECK(active_.size() < max_batch_, "admit with all {} batch slots taken", max_batch_);
  const CompletionRequest& r = pending.request;
  TESSERA_CHECK(!r.prompt.empty() && r.max_tokens >= 1 &&
                    static_cast<int64_t>(r.prompt.size()) + r.max_tokens <= model_.context_length(),
                "a request of {} prompt tokens + {} new ones does not fit the context length {}",
                r.prompt.size(), r.max_tokens, model_.context_length());
  auto state = model_.new_sequence();
  const uint64_t seed = r.seed;
  active_.push_back(std::make_unique<Sequence>(Sequence{std::move(pending), std::move(state), Sampler(seed),
                                                        {}, std::chrono::steady_clock::now(), {}}));
}

size_t BatchScheduler::step() {
  if (active_.empty()) return 0;
  std::vector<SequenceState*> states;
  std::vector<std::vector<int32_t>> feeds;
  for (const auto& s : active_) {
    states.push_back(s->state.get());
    // The first step of a sequence is its prefill: the whole prompt, in the same call.
    feeds.push_back(s->generated.empty() ? s->pending.request.prompt
                                         : std::vector<int32_t>{s->generated.back()});
  }
  const Tensor logits = model_.step(states, feeds);
  const int64_t vocab = model_.vocab_size();
  TESSERA_CHECK(logits.dtype() == DType::F32 && logits.ndim() == 2 &&
                    logits.dim(0) == static_cast<int64_t>(active_.size()) && logits.dim(1) == vocab,
                "the model step returned logits of the wrong shape for {} sequences", active_.size());
  // Sample every sequence before changing any, so that a throw leaves the batch whole for fail_all.
  std::vector<int32_t> next(active_.size());
  for (size_t i = 0; i < active_.size(); ++i) {
    next[i] = active_[i]->sampler.next(logits.f32() + static_cast<int64_t>(i) * vocab, vocab,
                                       active_[i]->pending.request.sampling);
  }
  const auto now = std::chrono::steady_clock::now();
  const size_t stepped = active_.size();
  std::vector<std::unique_ptr<Sequence>> still_active;
  for (size_t i = 0; i < active_.size(); ++i) {
    Sequence& s = *active_[i];
    const CompletionRequest& r = s.pending.request;
    if (s.generated.empty()) s.prefilled = now;
    s.generated.push_back(next[i]);
    if (static_cast<int64_t>(s.generated.size()) < r.max_tokens) {
      still_active.push_back(std::move(active_[i]));
      continue;
    }
    CompletionResult result;
    result.tokens = std::move(s.generated);
    result.queue_ms = ms_between(s.pending.submitted, s.admitted);
    result.prefill_ms = ms_between(s.admitted, s.prefilled);
    result.decode_ms = ms_between(s.prefilled, now);
    s.pending.promise.set_value(std::move(result));
  }
  active_ = std::move(still_active);
  return stepped;
}

void BatchScheduler::fail_all(const std::string& reason) {
  for (auto& s : active_) {
    CompletionResult result;
    result.status = CompletionStatus::Failed;
    result.error = reason;
    s->pending.promise.set_value(std::move(result));
  }
  active_.clear();
}

}  // namespace tessera
