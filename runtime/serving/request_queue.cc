// RequestQueue: a mutex-guarded deque with a capacity, and a condition variable for the loop.
#include "runtime/serving/request_queue.h"

#include <fmt/format.h>

#include "core/error.h"

namespace tessera {

RequestQueue::RequestQueue(size_t capacity) : capacity_(capacity) {
  TESSERA_REQUIRE(capacity >= 1, "the request queue needs room for at least 1 request, not {}", capacity);
}

RequestQueue::Submission RequestQueue::submit(CompletionRequest request) {
  std::vector<CompletionRequest> one;
  one.push_back(std::move(request));
  Submissions all = submit_all(std::move(one));
  Submission submission;
  submission.refusal = std::move(all.refusal);
  if (submission.accepted()) submission.result = std::move(all.results.front());
  return submission;
}

RequestQueue::Submissions RequestQueue::submit_all(std::vector<CompletionRequest> requests) {
  Submissions submissions;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) {
      submissions.refusal = "the server is shutting down";
      return submissions;
    }
    if (items_.size() + requests.size() > capacity_) {
      submissions.refusal = requests.size() == 1
                                ? fmt::format("the request queue is full ({} waiting); retry later", items_.size())
                                : fmt::format("the request queue has no room for {} sequences ({} of {} waiting); "
                                              "retry later", requests.size(), items_.size(), capacity_);
      return submissions;
    }
    const auto now = std::chrono::steady_clock::now();
    for (CompletionRequest& request : requests) {
      PendingRequest pending{std::move(request), {}, now};
      submissions.results.push_back(pending.promise.get_future());
      items_.push_back(std::move(pending));
    }
  }
  ready_.notify_one();
  return submissions;
}

std::vector<PendingRequest> RequestQueue::take(size_t max, bool wait, std::chrono::milliseconds wait_limit) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (wait) ready_.wait_for(lock, wait_limit, [&] { return !items_.empty() || closed_; });
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
