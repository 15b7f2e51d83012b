// RequestQueue: a mutex-guarded deque with a capacity, and a condition variable for the loop.
#include "runtime/serving/request_queue.h"

#include <fmt/format.h>

#include "core/error.h"

namespace tessera {

RequestQueue::RequestQueue(size_t capacity) : capacity_(capacity) {
  TESSERA_REQUIRE(capacity >= 1, "the request queue needs room for at least 1 request, not {}", capacity);
}

RequestQueue::Submission RequestQueue::submit(CompletionRequest request) {
  Submission submission;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) {
      submission.refusal = "the server is shutting down";
      return submission;
    }
    if (items_.size() >= capacity_) {
      submission.refusal = fmt::format("the request queue is full ({} waiting); retry later",
                                       items_.size());
      return submission;
    }
    PendingRequest pending{std::move(request), {}, std::chrono::steady_clock::now()};
    submission.result = pending.promise.get_future();
    items_.push_back(std::move(pending));
  }
  ready_.notify_one();
  return submission;
}

std::vector<PendingRequest> RequestQueue::take(size_t max, bool wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (wait) ready_.wait(lock, [&] { return !items_.empty() || closed_; });
  std::vector<PendingRequest> out;
  while (out.size() < max && !items_.empty()) {
    out.push_back(std::move(items_.front()));
    items_.pop_front();
  }
  return out;
}

void RequestQueue::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  ready_.notify_all();
}

bool RequestQueue::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

size_t RequestQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return items_.size();
}

}  // namespace tessera
