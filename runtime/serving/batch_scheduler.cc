// BatchScheduler: admission, the batched step, sampling, per-token callbacks and retiring
// finished sequences.
#include "runtime/serving/batch_scheduler.h"

#include <exception>
#include <utility>

#include "core/error.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

BatchScheduler::BatchScheduler(const SequenceModel& model, size_t max_batch, ServingObserver* observer)
    : model_(model), max_batch_(max_batch), observer_(observer) {
  TESSERA_REQUIRE(max_batch >= 1, "the batch needs room for at least 1 sequence, not {}", max_batch);
}

void BatchScheduler::admit(PendingRequest&& pending) {
  TESSERA_CHECK(active_.size() < max_batch_, "admit with all {} batch slots taken", max_batch_);
  const CompletionRequest& r = pending.request;
  TESSERA_CHECK(!r.prompt.empty() && r.max_tokens >= 0 &&
                    static_cast<int64_t>(r.prompt.size()) + r.max_tokens <= model_.context_length(),
                "a request of {} prompt tokens + {} new ones does not fit the context length {}",
                r.prompt.size(), r.max_tokens, model_.context_length());
  TESSERA_CHECK(r.logprobs <= model_.vocab_size(), "logprobs {} exceeds the vocabulary of {}", r.logprobs,
                model_.vocab_size());
  TESSERA_CHECK(r.logprobs >= 0 || !r.prompt_logprobs, "prompt logprobs need logprobs >= 0");
  auto state = model_.new_sequence();
  const uint64_t seed = r.seed;
  auto sequence = std::make_unique<Sequence>(Sequence{std::move(pending), std::move(state), Sampler(seed), {}, {}, {}, {}});
  sequence->admitted = Clock::now();
  active_.push_back(std::move(sequence));
}

size_t BatchScheduler::step() {
  if (active_.empty()) return 0;
  std::vector<SequenceState*> states;
  std::vector<std::vector<int32_t>> feeds;
  std::vector<bool> every_row;
  std::vector<int64_t> first_row, last_row;  // of each sequence in the logits
  for (const auto& s : active_) {
    states.push_back(s->state.get());
    // The first step of a sequence is its prefill: the whole prompt, in the same call.
    const bool prefill = s->result.tokens.empty();
    feeds.push_back(prefill ? s->pending.request.prompt : std::vector<int32_t>{s->result.tokens.back()});
    every_row.push_back(prefill && s->pending.request.prompt_logprobs);
    first_row.push_back(last_row.empty() ? 0 : last_row.back() + 1);
    last_row.push_back(first_row.back() + (every_row.back() ? static_cast<int64_t>(feeds.back().size()) : 1) - 1);
  }
  const Tensor logits = model_.step(states, feeds, every_row);
  const int64_t vocab = model_.vocab_size();
  TESSERA_CHECK(logits.dtype() == DType::F32 && logits.ndim() == 2 && logits.dim(0) == last_row.back() + 1 &&
                    logits.dim(1) == vocab,
                "the model step returned logits of the wrong shape for {} sequences", active_.size());
  const auto row = [&](int64_t r) { return logits.f32() + r * vocab; };
  // Sample every sequence before changing any, so that a throw leaves the batch whole for end_all.
  std::vector<int32_t> next(active_.size());
  for (size_t i = 0; i < active_.size(); ++i) {
    next[i] = active_[i]->sampler.next(row(last_row[i]), vocab, active_[i]->pending.request.sampling);
  }
  const auto now = Clock::now();
  const size_t stepped = active_.size();
  if (observer_ != nullptr) observer_->on_step(stepped, max_batch_);
  std::vector<std::unique_ptr<Sequence>> still_active;
  for (size_t i = 0; i < active_.size(); ++i) {
    Sequence& s = *active_[i];
    if (!accept_token(s, next[i], row(last_row[i]), every_row[i] ? row(first_row[i]) : nullptr, now)) {
      still_active.push_back(std::move(active_[i]));
      continue;
    }
    s.result.queue_ms = ms_between(s.pending.submitted, s.admitted);
    s.result.prefill_ms = ms_between(s.admitted, s.prefilled);
    s.result.decode_ms = ms_between(s.prefilled, now);
    s.pending.promise.set_value(std::move(s.result));
  }
  active_ = std::move(still_active);
  return stepped;
}

bool BatchScheduler::accept_token(Sequence& s, int32_t token, const float* logits, const float* prompt_rows,
                                  Clock::time_point now) {
  const CompletionRequest& r = s.pending.request;
  CompletionResult& result = s.result;
  const int64_t vocab = model_.vocab_size();
  if (prompt_rows != nullptr) {
    // Row j predicts prompt token j + 1.
    for (size_t j = 1; j < r.prompt.size(); ++j) {
      result.prompt_logprobs.push_back(token_logprobs(prompt_rows + (j - 1) * vocab, vocab, r.prompt[j], r.logprobs));
    }
  }
  if (r.max_tokens == 0) {  // the prompt's logprobs were all it wanted
    s.prefilled = now;
    return true;
  }
  if (result.tokens.empty()) {
    s.prefilled = now;
    result.first_token_ms = ms_between(s.pending.submitted, now);
    if (observer_ != nullptr) observer_->on_first_token(result.first_token_ms / 1000);
  } else if (observer_ != nullptr) {
    observer_->on_next_token(ms_between(s.last_token, now) / 1000);
  }
  s.last_token = now;
  result.tokens.push_back(token);
  TokenEvent event{token, static_cast<int64_t>(result.tokens.size()) - 1, nullptr,
                   prompt_rows != nullptr ? &result.prompt_logprobs : nullptr};
  if (r.logprobs >= 0) {
    result.logprobs.push_back(token_logprobs(logits, vocab, token, r.logprobs));
    event.logprobs = &result.logprobs.back();
  }
  TokenVerdict verdict = TokenVerdict::Continue;
  if (r.on_token) {
    try {
      verdict = r.on_token(event);
    } catch (const std::exception&) {
      // A callback that throws has lost its client's state; the sequence is of no use to anyone.
      verdict = TokenVerdict::Cancel;
    }
  }
  if (verdict == TokenVerdict::Stop) result.finish_reason = FinishReason::Stop;
  if (verdict == TokenVerdict::Cancel) result.finish_reason = FinishReason::Cancelled;
  return verdict != TokenVerdict::Continue || static_cast<int64_t>(result.tokens.size()) >= r.max_tokens;
}

void BatchScheduler::end_all(CompletionStatus status, const std::string& reason) {
  for (auto& s : active_) {
    CompletionResult result;
    result.status = status;
    result.error = reason;
    s->pending.promise.set_value(std::move(result));
  }
  active_.clear();
}

}  // namespace tessera
