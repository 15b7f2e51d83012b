// CompletionJob: the decode loop appends tokens under the job's mutex; the handler thread
// takes the futures' results without it (the loop answers a future right after the token's
// callback, so waiting on one while holding the mutex could hold up another choice's token).
#include "launcher/serve_job.h"

#include <algorithm>

#include <fmt/format.h>

namespace tessera {

using nlohmann::json;

CompletionJob::CompletionJob(CompletionParams params, const Vocabulary& vocab, CompletionHeader header,
                             uint64_t default_seed)
    : params_(std::move(params)), vocab_(vocab), header_(std::move(header)), seed_(params_.seed.value_or(default_seed)) {
  for (size_t p = 0; p < params_.prompts.size(); ++p) {
    for (int j = 0; j < params_.n; ++j) {
      choices_.emplace_back(p, params_.max_tokens[p], params_.stop);
    }
  }
}

std::vector<CompletionRequest> CompletionJob::requests(const std::shared_ptr<CompletionJob>& job) {
  std::vector<CompletionRequest> out;
  for (size_t c = 0; c < job->choices_.size(); ++c) {
    CompletionRequest r;
    r.prompt = job->params_.prompts[job->choices_[c].prompt];
    r.max_tokens = job->choices_[c].max_tokens;
    r.sampling = job->params_.sampling;
    // Choice c samples with seed + c: n choices of one prompt differ, and each replays alone.
    r.seed = job->seed_ + c;
    r.logprobs = job->params_.logprobs;
    r.prompt_logprobs = job->scores_prompt();
    r.on_token = [job, c](const TokenEvent& event) { return job->on_token(c, event); };
    out.push_back(std::move(r));
  }
  return out;
}

void CompletionJob::start(std::vector<std::future<CompletionResult>> results) {
  TESSERA_CHECK(results.size() == choices_.size(), "{} futures for {} choices", results.size(), choices_.size());
  for (size_t c = 0; c < choices_.size(); ++c) choices_[c].future = std::move(results[c]);
}

int64_t CompletionJob::text_base(const Choice& choice) const {
  return params_.echo ? static_cast<int64_t>(params_.prompt_texts[choice.prompt].size()) : 0;
}

TokenVerdict CompletionJob::on_token(size_t c, const TokenEvent& event) {
  if (cancelled_.load()) return TokenVerdict::Cancel;
  std::lock_guard<std::mutex> lock(mutex_);
  Choice& choice = choices_[c];
  const int64_t offset = text_base(choice) + static_cast<int64_t>(choice.text.text().size());
  if (event.prompt_logprobs != nullptr) add_prompt_logprobs(choice, *event.prompt_logprobs);
  if (event.logprobs != nullptr) choice.logprobs.push_back({event.token, *event.logprobs, offset});
  const bool stop = choice.text.append(vocab_.decode(std::vector<int32_t>{event.token}));
  choice.last_token_seen = stop || event.index + 1 >= choice.max_tokens;
  news_ = true;
  changed_.notify_all();
  return stop ? TokenVerdict::Stop : TokenVerdict::Continue;
}

void CompletionJob::add_prompt_logprobs(Choice& choice, const std::vector<TokenLogprobs>& prompt_logprobs) {
  if (choice.prompt_known) return;
  const std::vector<int32_t>& prompt = params_.prompts[choice.prompt];
  std::vector<TokenLogprobsAt> entries;
  int64_t offset = 0;
  for (size_t j = 0; j < prompt.size(); ++j) {
    entries.push_back({prompt[j], j == 0 ? std::nullopt : std::optional(prompt_logprobs.at(j - 1)), offset});
    offset += static_cast<int64_t>(vocab_.decode(std::vector<int32_t>{prompt[j]}).size());
  }
  choice.logprobs.insert(choice.logprobs.begin(), entries.begin(), entries.end());
  choice.prompt_known = true;
}

void CompletionJob::collect_finished(bool block) {
  for (Choice& choice : choices_) {
    if (choice.done) continue;
    bool expect_now = block;
    if (!expect_now) {
      std::lock_guard<std::mutex> lock(mutex_);
      expect_now = choice.last_token_seen;
    }
    if (expect_now || choice.future.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      CompletionResult result = choice.future.get();
      std::lock_guard<std::mutex> lock(mutex_);
      choice.result = std::move(result);
      choice.done = true;
      // max_tokens 0: no token event brought them.
      if (scores_prompt() && choice.result.status == CompletionStatus::Finished) {
        add_prompt_logprobs(choice, choice.result.prompt_logprobs);
      }
    }
  }
}

void CompletionJob::throw_if_failed() const {
  for (const Choice& choice : choices_) {
    if (choice.result.status == CompletionStatus::Failed) throw RequestError(500, "", choice.result.error);
    if (choice.result.status == CompletionStatus::Rejected) throw RequestError(503, "", choice.result.error);
  }
}

json CompletionJob::logprobs_until(const Choice& choice, int64_t end, size_t& from) const {
  if (params_.logprobs < 0) return nullptr;
  std::vector<TokenLogprobsAt> tokens;
  while (from < choice.logprobs.size() && choice.logprobs[from].text_offset < end) tokens.push_back(choice.logprobs[from++]);
  return logprobs_json(tokens, vocab_);
}

json CompletionJob::answer() {
  collect_finished(true);
  throw_if_failed();
  std::lock_guard<std::mutex> lock(mutex_);
  json choices = json::array();
  for (size_t c = 0; c < choices_.size(); ++c) {
    Choice& choice = choices_[c];
    std::string text = choice.text.text();
    if (params_.echo) text = params_.prompt_texts[choice.prompt] + text;
    size_t from = 0;
    const json logprobs = logprobs_until(choice, text_base(choice) + static_cast<int64_t>(choice.text.text().size()), from);
    choices.push_back(choice_json(static_cast<int>(c), text, logprobs, finish_reason_name(choice.result.finish_reason)));
  }
  json body = completion_json(header_, std::move(choices));
  body["usage"] = usage_json(prompt_tokens(), completion_tokens());
  body["seed"] = seed_;  // an extension: replays a request that had no seed
  return body;
}

std::string CompletionJob::stream_chunk(size_t index, Choice& choice) {
  std::string text;
  // With logprobs the echoed prompt waits for its entries (they come with the first token).
  if (params_.echo && !choice.echo_sent && (!scores_prompt() || choice.prompt_known)) {
    text = params_.prompt_texts[choice.prompt];
    choice.echo_sent = true;
  }
  const std::string delta = choice.text.take_ready(choice.done);
  text += delta;
  choice.streamed += static_cast<int64_t>(delta.size());
  const bool finishing = choice.done && !choice.finish_sent && choice.result.status == CompletionStatus::Finished;
  if (text.empty() && !finishing) return "";
  const json logprobs = logprobs_until(choice, text_base(choice) + choice.streamed, choice.logprobs_sent);
  if (finishing) choice.finish_sent = true;
  const json reason = finishing ? json(finish_reason_name(choice.result.finish_reason)) : json(nullptr);
  json chunk = completion_json(header_, json::array({choice_json(static_cast<int>(index), text, logprobs, reason)}));
  return "data: " + dump_json(chunk) + "\n\n";
}

bool CompletionJob::stream(std::chrono::milliseconds wait, std::string& events) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, wait, [this] { return news_; });
    news_ = false;
  }
  collect_finished(false);
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t c = 0; c < choices_.size(); ++c) events += stream_chunk(c, choices_[c]);
  const bool all_done = std::all_of(choices_.begin(), choices_.end(), [](const Choice& ch) { return ch.done; });
  if (!all_done) return false;
  try {
    throw_if_failed();
  } catch (const RequestError& e) {
    events += "data: " + dump_json(error_json(e.status(), e.what())) + "\n\n";
  }
  if (params_.include_usage && !usage_sent_) {
    json chunk = completion_json(header_, json::array());
    chunk["usage"] = usage_json(prompt_tokens(), completion_tokens());
    events += "data: " + dump_json(chunk) + "\n\n";
    usage_sent_ = true;
  }
  events += "data: [DONE]\n\n";
  return true;
}

int64_t CompletionJob::prompt_tokens() const {
  int64_t n = 0;
  for (const auto& prompt : params_.prompts) n += static_cast<int64_t>(prompt.size());
  return n;
}

int64_t CompletionJob::completion_tokens() const {
  int64_t n = 0;
  for (const Choice& choice : choices_) n += static_cast<int64_t>(choice.result.tokens.size());
  return n;
}

std::vector<std::string> CompletionJob::finish_reasons() const {
  std::vector<std::string> reasons;
  for (const Choice& choice : choices_) {
    const CompletionResult& r = choice.result;
    reasons.push_back(!choice.done || r.status != CompletionStatus::Finished ? "error"
                      : r.finish_reason == FinishReason::Cancelled          ? "cancelled"
                                                                            : finish_reason_name(r.finish_reason));
  }
  return reasons;
}

std::string CompletionJob::summary() const {
  const std::vector<std::string> reasons = finish_reasons();
  double first_token_ms = 0, queue_ms = 0;
  for (const Choice& choice : choices_) {
    const CompletionResult& r = choice.result;
    first_token_ms = std::max(first_token_ms, r.first_token_ms);
    queue_ms = std::max(queue_ms, r.queue_ms);
  }
  return fmt::format("prompt {} tokens, completion {} tokens, {} choice{} ({}), queue {:.1f} ms, first token {:.1f} ms",
                     prompt_tokens(), completion_tokens(), choices_.size(), choices_.size() == 1 ? "" : "s",
                     fmt::join(reasons, ","), queue_ms, first_token_ms);
}

}  // namespace tessera
