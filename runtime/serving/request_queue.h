// The bounded queue between the HTTP handler threads and the decode loop: handlers submit a
// request and wait on its future; the loop takes requests between model steps. A full or
// closed queue refuses at once (the HTTP layer answers 503) instead of letting clients pile up.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/serving/completion.h"

namespace tessera {

struct PendingRequest {
  CompletionRequest request;
  std::promise<CompletionResult> promise;
  std::chrono::steady_clock::time_point submitted;
};

class RequestQueue {
 public:
  explicit RequestQueue(size_t capacity);

  struct Submission {
    std::future<CompletionResult> result;  // valid only when accepted
    std::string refusal;                   // empty when accepted, else why not (one line)
    bool accepted() const { return refusal.empty(); }
  };
  Submission submit(CompletionRequest request);
  // All or none: several sequences of one client request (prompts x n) enter together, so a
  // full queue never leaves a request half-submitted. `results` has one future per request.
  struct Submissions {
    std::vector<std::future<CompletionResult>> results;
    std::string refusal;
    bool accepted() const { return refusal.empty(); }
  };
  Submissions submit_all(std::vector<CompletionRequest> requests);

  // Up to `max` requests in arrival order. With `wait`, blocks while the queue is empty and
  // open, for at most `wait_limit`; returns an empty list once it is closed and empty.
  std::vector<PendingRequest> take(size_t max, bool wait,
                                   std::chrono::milliseconds wait_limit = std::chrono::hours(24));

  // Refuses every later submit and wakes a waiting take(); queued requests stay to be taken.
  void close();
  bool closed() const;
  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<PendingRequest> items_;
  bool closed_ = false;
};

}  // namespace tessera
