// The one thread that runs the model for the server: between steps it moves requests from the
// queue into free batch slots, then steps the whole batch. HTTP handler threads never touch
// the model; they wait on their request's future.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "runtime/serving/batch_scheduler.h"
#include "runtime/serving/request_queue.h"
#include "runtime/serving/sequence_model.h"

namespace tessera {

class DecodeLoop {
 public:
  // Starts the thread. The model and queue must outlive the loop. threads > 0: the OpenMP
  // threads of the model steps (an OpenMP setting is per thread, so the loop sets its own);
  // 0 keeps OpenMP's default.
  DecodeLoop(const SequenceModel& model, RequestQueue& queue, size_t max_batch, int threads = 0);
  // shutdown(), if not done yet.
  ~DecodeLoop();
  DecodeLoop(const DecodeLoop&) = delete;
  DecodeLoop& operator=(const DecodeLoop&) = delete;

  // Closes the queue: later submits are refused, requests still waiting in it end Rejected,
  // the sequences already in the batch are finished. Returns when the thread has ended.
  void shutdown();

  size_t active() const { return active_.load(); }         // sequences in the batch
  uint64_t completed() const { return completed_.load(); }  // requests answered, any status
  uint64_t steps() const { return steps_.load(); }          // batched model steps run

 private:
  void run();

  RequestQueue& queue_;
  BatchScheduler scheduler_;
  const int threads_;
  std::atomic<size_t> active_{0};
  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> steps_{0};
  std::thread thread_;
};

}  // namespace tessera
