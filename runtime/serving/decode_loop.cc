// DecodeLoop: admit, step, repeat; on shutdown reject what never started, finish the rest.
#include "runtime/serving/decode_loop.h"

#include <exception>
#include <string>

#include <omp.h>

namespace tessera {

DecodeLoop::DecodeLoop(const SequenceModel& model, RequestQueue& queue, size_t max_batch, int threads)
    : queue_(queue), scheduler_(model, max_batch), threads_(threads), thread_([this] { run(); }) {}

DecodeLoop::~DecodeLoop() { shutdown(); }

void DecodeLoop::shutdown() {
  queue_.close();
  if (thread_.joinable()) thread_.join();
}

void DecodeLoop::run() {
  if (threads_ > 0) omp_set_num_threads(threads_);
  while (true) {
    if (queue_.closed()) {
      // Requests that never started are answered at once rather than after the batch drains.
      for (PendingRequest& p : queue_.take(queue_.capacity(), false)) {
        CompletionResult result;
        result.status = CompletionStatus::Rejected;
        result.error = "the server shut down before the request started";
        p.promise.set_value(std::move(result));
        completed_.fetch_add(1);
      }
    } else {
      // Block only when there is nothing to step; otherwise just fill the free slots.
      for (PendingRequest& p : queue_.take(scheduler_.free_slots(), scheduler_.active() == 0)) {
        try {
          scheduler_.admit(std::move(p));
        } catch (const std::exception& e) {
          CompletionResult result;
          result.status = CompletionStatus::Failed;
          result.error = e.what();
          p.promise.set_value(std::move(result));
          completed_.fetch_add(1);
        }
      }
    }
    if (scheduler_.active() == 0) {
      if (queue_.closed() && queue_.size() == 0) return;
      continue;
    }
    active_.store(scheduler_.active());
    const size_t before = scheduler_.active();
    try {
      scheduler_.step();
    } catch (const std::exception& e) {
      scheduler_.fail_all(std::string("the model step failed: ") + e.what());
    }
    steps_.fetch_add(1);
    completed_.fetch_add(before - scheduler_.active());
    active_.store(scheduler_.active());
  }
}

}  // namespace tessera
