// DecodeLoop: admit, step, repeat; on shutdown reject what never started, finish the rest up
// to the deadline; a model that can no longer step ends the loop.
#include "runtime/serving/decode_loop.h"

#include <exception>
#include <string>

#include <omp.h>

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

// How long the loop waits for work before it calls the model's idle().
constexpr std::chrono::milliseconds kIdleInterval{1000};

int64_t to_ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

DecodeLoop::DecodeLoop(const SequenceModel& model, RequestQueue& queue, size_t max_batch, int threads,
                       ServingObserver* observer)
    : model_(model), queue_(queue), scheduler_(model, max_batch, observer), threads_(threads),
      thread_([this] { run(); }) {}

DecodeLoop::~DecodeLoop() { shutdown(); }

void DecodeLoop::begin_shutdown(Clock::time_point deadline) {
  deadline_ns_.store(to_ns(deadline));
  queue_.close();
}

void DecodeLoop::shutdown() {
  queue_.close();
  if (thread_.joinable()) thread_.join();
}

std::string DecodeLoop::fatal_error() const {
  std::lock_guard<std::mutex> lock(fatal_mutex_);
  return fatal_error_;
}

void DecodeLoop::reject_waiting(const std::string& reason) {
  // Requests that never started are answered at once rather than after the batch drains.
  for (PendingRequest& p : queue_.take(queue_.capacity(), false)) {
    CompletionResult result;
    result.status = CompletionStatus::Rejected;
    result.error = reason;
    p.promise.set_value(std::move(result));
    completed_.fetch_add(1);
  }
}

void DecodeLoop::admit_waiting() {
  // Block only when there is nothing to step; otherwise just fill the free slots.
  for (PendingRequest& p : queue_.take(scheduler_.free_slots(), scheduler_.active() == 0, kIdleInterval)) {
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

void DecodeLoop::run() {
  if (threads_ > 0) omp_set_num_threads(threads_);
  auto last_work = Clock::now();
  try {
    while (true) {
      if (queue_.closed()) {
        reject_waiting("the server shut down before the request started");
      } else {
        admit_waiting();
      }
      const size_t before = scheduler_.active();
      if (before == 0) {
        if (queue_.closed() && queue_.size() == 0) break;
        if (Clock::now() - last_work >= kIdleInterval) {
          model_.idle();
          last_work = Clock::now();
        }
        continue;
      }
      if (to_ns(Clock::now()) >= deadline_ns_.load()) {
        scheduler_.end_all(CompletionStatus::Rejected, "the server's shutdown deadline passed before the request finished");
      } else {
        active_.store(before);
        try {
          scheduler_.step();
        } catch (const std::exception& e) {
          scheduler_.end_all(CompletionStatus::Failed, std::string("the model step failed: ") + e.what());
          if (!model_.usable()) {
            completed_.fetch_add(before);
            throw;
          }
        }
        steps_.fetch_add(1);
      }
      completed_.fetch_add(before - scheduler_.active());
      active_.store(scheduler_.active());
      last_work = Clock::now();
    }
  } catch (const std::exception& e) {
    {
      std::lock_guard<std::mutex> lock(fatal_mutex_);
      fatal_error_ = e.what();
    }
    queue_.close();
    reject_waiting(std::string("the server is stopping: ") + e.what());
  }
  active_.store(0);
  ended_.store(true);
}

}  // namespace tessera
