// One OpenAI completion request while it runs: its choices (prompts x n), the text each has so
// far with its stop strings, and the hand-over between the decode loop thread (on_token, per
// sampled token) and the handler thread that answers it -- whole, or streamed as server-sent
// events chunk by chunk, each token's text as soon as it is decoded.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/serve_request.h"
#include "launcher/serve_response.h"
#include "runtime/serving/completion.h"
#include "runtime/serving/text_stream.h"

namespace tessera {

class CompletionJob {
 public:
  CompletionJob(CompletionParams params, const Vocabulary& vocab, CompletionHeader header, uint64_t default_seed);

  // The sequences to queue, choice by choice (prompt-major, as OpenAI numbers choices); their
  // callbacks hold the job alive.
  static std::vector<CompletionRequest> requests(const std::shared_ptr<CompletionJob>& job);
  // The queue's futures, in the order of requests().
  void start(std::vector<std::future<CompletionResult>> results);

  // Decode loop thread: a choice's next token.
  TokenVerdict on_token(size_t choice, const TokenEvent& event);

  // Handler thread, stream: false. Waits for every choice; the 200 body, or throws
  // RequestError (500 a failed step, 503 shut down).
  nlohmann::json answer();
  // Handler thread, stream: true. Waits up to `wait` for news, then appends the SSE events
  // that are ready ("data: {...}\n\n"); true once the stream is complete ("data: [DONE]").
  bool stream(std::chrono::milliseconds wait, std::string& events);
  // Waits until every choice has its result (after a cancel: at most one more step each).
  void wait_finished() { collect_finished(true); }
  // The client is gone: every choice stops at its next token.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  const CompletionHeader& header() const { return header_; }
  const CompletionParams& params() const { return params_; }
  // For the request log line and metrics, once finished.
  int64_t prompt_tokens() const;
  int64_t completion_tokens() const;
  std::vector<std::string> finish_reasons() const;  // per choice: length, stop, cancelled, error
  std::string summary() const;  // "prompt 7 tokens, completion 40 tokens, 1 choice (length), ..."

 private:
  struct Choice {
    Choice(size_t prompt_index, int64_t max_new_tokens, std::vector<std::string> stop)
        : prompt(prompt_index), max_tokens(max_new_tokens), text(std::move(stop)) {}
    size_t prompt = 0;
    int64_t max_tokens = 0;
    TextStream text;
    std::vector<TokenLogprobsAt> logprobs;  // with echo, the prompt's tokens first
    bool prompt_known = false;              // echo with logprobs: the prompt's entries are in
    bool last_token_seen = false;    // the decode loop is about to answer its future
    std::future<CompletionResult> future;
    bool done = false;
    CompletionResult result;
    bool echo_sent = false, finish_sent = false;
    int64_t streamed = 0;      // bytes of generated text sent
    size_t logprobs_sent = 0;  // tokens whose logprobs were sent
  };
  void collect_finished(bool block);                // moves ready futures' results into their choices
  bool scores_prompt() const { return params_.echo && params_.logprobs >= 0; }
  // Puts the prompt's entries in front of choice.logprobs (its first token has no logprob).
  void add_prompt_logprobs(Choice& choice, const std::vector<TokenLogprobs>& prompt_logprobs);
  int64_t text_base(const Choice& choice) const;    // offset of generated text (the prompt when echoing)
  nlohmann::json logprobs_until(const Choice& choice, int64_t end, size_t& from) const;
  std::string stream_chunk(size_t index, Choice& choice);  // "" when there is no news
  void throw_if_failed() const;

  const CompletionParams params_;
  const Vocabulary& vocab_;
  const CompletionHeader header_;
  const uint64_t seed_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool news_ = false;
  std::vector<Choice> choices_;
  bool usage_sent_ = false;
};

}  // namespace tessera
