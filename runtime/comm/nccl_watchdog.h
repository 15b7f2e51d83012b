// Internal to NcclCommunicator: the watchdog thread. NCCL operations return once enqueued, so
// a peer that never arrives leaves kernels spinning on the device and nothing on the host ever
// returns an error. The watchdog (PyTorch's ProcessGroupNCCL design) polls each operation's end
// event; when one is still pending past its deadline it calls ncclCommAbort on that
// communicator, which makes its kernels return, and records the timeout message. The caller's
// next operation on the group throws that message. If the caller does not come back within
// another timeout (it is blocked elsewhere), the watchdog prints the line itself and ends the job.
#pragma once

#include <nccl.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/device/cuda_context.h"

namespace tessera::detail {

class NcclWatchdog {
 public:
  // world_rank: for the line printed when the watchdog ends the job itself.
  explicit NcclWatchdog(int world_rank);
  ~NcclWatchdog();
  NcclWatchdog(const NcclWatchdog&) = delete;
  NcclWatchdog& operator=(const NcclWatchdog&) = delete;

  // An operation about to be issued on `comm`: its timeout message (without the prefix) if it
  // does not finish within timeout_s. Returns the id for issued().
  uint64_t watch(ncclComm_t comm, std::string timeout_message, double timeout_s);
  // The event recorded on the NCCL stream after the operation: done() means it finished.
  void issued(uint64_t id, std::shared_ptr<CudaEvent> end);
  // An operation that failed to issue (its error is reported by the caller): not watched.
  void forget(uint64_t id);
  // The timeout message of an aborted communicator (empty when it was not aborted); the caller
  // reports it, so the watchdog no longer has to.
  std::string take_failure(ncclComm_t comm);
  // True when `comm` was aborted (its handle must then not be destroyed with ncclCommDestroy).
  bool aborted(ncclComm_t comm);

 private:
  struct Entry {
    ncclComm_t comm;
    std::string message;
    std::chrono::steady_clock::time_point deadline;
    double timeout_s;
    std::shared_ptr<CudaEvent> end;  // null until issued
  };
  struct Failure {
    std::string message;
    bool reported = false;
    std::chrono::steady_clock::time_point report_by;
  };
  void run();
  void poll_locked();

  int world_rank_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  uint64_t next_id_ = 0;
  std::map<uint64_t, Entry> pending_;
  std::map<ncclComm_t, Failure> failures_;
  std::thread thread_;
};

}  // namespace tessera::detail
