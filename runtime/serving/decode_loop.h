// The one thread that runs the model for the server: between steps it moves requests from the
// queue into free batch slots, then steps the whole batch. HTTP handler threads never touch
// the model; they wait on their request's future (or get its tokens through its callback).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/serving/batch_scheduler.h"
#include "runtime/serving/request_queue.h"
#include "runtime/serving/sequence_model.h"
#include "runtime/serving/serving_observer.h"

namespace tessera {

class DecodeLoop {
 public:
  // Starts the thread. The model, queue and observer (may be null) must outlive the loop.
  // threads > 0: the OpenMP threads of the model steps (an OpenMP setting is per thread, so
  // the loop sets its own); 0 keeps OpenMP's default.
  DecodeLoop(const SequenceModel& model, RequestQueue& queue, size_t max_batch, int threads = 0,
             ServingObserver* observer = nullptr);
  // shutdown(), if not done yet.
  ~DecodeLoop();
  DecodeLoop(const DecodeLoop&) = delete;
  DecodeLoop& operator=(const DecodeLoop&) = delete;

  // Closes the queue: later submits are refused, requests still waiting in it end Rejected,
  // the sequences already in the batch are finished -- those still running at `deadline` end
  // Rejected too. Returns at once; shutdown() waits for the thread.
  void begin_shutdown(std::chrono::steady_clock::time_point deadline);
  // begin_shutdown() without a deadline unless one was set, then waits for the thread to end.
  void shutdown();

  size_t active() const { return active_.load(); }         // sequences in the batch
  size_t capacity() const { return scheduler_.capacity(); }  // batch slots
  uint64_t completed() const { return completed_.load(); }  // requests answered, any status
  uint64_t steps() const { return steps_.load(); }          // batched model steps run
  // Set when the loop ended because the model failed outside a step (a peer rank is gone):
  // then it answers every request 500 and the server must stop. Empty otherwise.
  std::string fatal_error() const;
  bool ended() const { return ended_.load(); }

 private:
  void run();
  void admit_waiting();
  void reject_waiting(const std::string& reason);

  const SequenceModel& model_;
  RequestQueue& queue_;
  BatchScheduler scheduler_;
  const int threads_;
  std::atomic<size_t> active_{0};
  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> steps_{0};
  std::atomic<bool> ended_{false};
  std::atomic<int64_t> deadline_ns_{INT64_MAX};  // steady_clock, since its epoch
  mutable std::mutex fatal_mutex_;
  std::string fatal_error_;
  std::thread thread_;
};

}  // namespace tessera
