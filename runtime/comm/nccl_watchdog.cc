// The NCCL watchdog thread: deadlines on end events, ncclCommAbort, and the last-resort job end.
#include "runtime/comm/nccl_watchdog.h"

#include <chrono>
#include <iostream>
#include <vector>

#include <fmt/format.h>

#include "runtime/comm/mpi_environment.h"

namespace tessera::detail {
namespace {
// Often enough that a timeout is reported within a few percent of the shortest usable
// parallel.timeout_s (1 s); cudaEventQuery costs about a microsecond.
constexpr auto kPollInterval = std::chrono::milliseconds(20);
}  // namespace

NcclWatchdog::NcclWatchdog(int world_rank) : world_rank_(world_rank), thread_([this] { run(); }) {}

NcclWatchdog::~NcclWatchdog() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

uint64_t NcclWatchdog::watch(ncclComm_t comm, std::string timeout_message, double timeout_s) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(timeout_s));
  pending_[next_id_] = Entry{comm, std::move(timeout_message), deadline, timeout_s, nullptr};
  return next_id_++;
}

void NcclWatchdog::issued(uint64_t id, std::shared_ptr<CudaEvent> end) {
  const std::lock_guard<std::mutex> lock(mutex_);
  auto it = pending_.find(id);
  if (it != pending_.end()) it->second.end = std::move(end);
}

void NcclWatchdog::forget(uint64_t id) {
  const std::lock_guard<std::mutex> lock(mutex_);
  pending_.erase(id);
}

std::string NcclWatchdog::take_failure(ncclComm_t comm) {
  const std::lock_guard<std::mutex> lock(mutex_);
  auto it = failures_.find(comm);
  if (it == failures_.end()) return {};
  it->second.reported = true;
  return it->second.message;
}

bool NcclWatchdog::aborted(ncclComm_t comm) {
  const std::lock_guard<std::mutex> lock(mutex_);
  return failures_.count(comm) > 0;
}

void NcclWatchdog::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, kPollInterval);
    if (!stop_) poll_locked();
  }
}

void NcclWatchdog::poll_locked() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<ncclComm_t> expired;
  for (auto it = pending_.begin(); it != pending_.end();) {
    const Entry& e = it->second;
    if (e.end != nullptr && e.end->done()) {
      it = pending_.erase(it);
      continue;
    }
    if (now >= e.deadline && failures_.count(e.comm) == 0) {
      failures_[e.comm] = Failure{e.message, false,
                                  now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                            std::chrono::duration<double>(e.timeout_s))};
      expired.push_back(e.comm);
    }
    ++it;
  }
  for (ncclComm_t comm : expired) {
    // The stuck kernels return; the events of this communicator's operations complete (with
    // garbage results, which nobody reads: every later call on the group throws).
    ncclCommAbort(comm);
    for (auto it = pending_.begin(); it != pending_.end();) {
      it = it->second.comm == comm ? pending_.erase(it) : std::next(it);
    }
  }
  for (const auto& [comm, failure] : failures_) {
    if (!failure.reported && now >= failure.report_by) {
      // The caller never came back to the group (blocked outside it): end the job with the line
      // it would have printed.
      std::cerr << fmt::format("tessera: error on rank {}: {}\n", world_rank_, failure.message) << std::flush;
      abort_job(1);
    }
  }
}

}  // namespace tessera::detail
