// NcclCommunicator: the Communicator over NCCL for CUDA tensors. The unique id of a new
// communicator is made by rank 0 and broadcast over MPI (the host communicator); tp/dp/pp groups
// come from ncclCommSplit. NCCL runs on a stream of its own: each operation first makes that
// stream wait for the compute stream (an event, no host wait), and the compute stream then
// waits for the operation's end, so the host never blocks on communication. MPI stays for
// host-side agreement (stop flags, errors); this class moves device tensors only.
//
// Timeouts: NCCL calls return once enqueued, so a missing peer shows up as work that never
// finishes. A watchdog thread (as PyTorch's ProcessGroupNCCL has) watches every operation's end
// event; past parallel.timeout_s it calls ncclCommAbort, which makes the stuck kernels return,
// and the next call (or the pending wait) throws the one-line timeout message of the MPI path,
// naming the operation, the group, the step and the peer. NCCL errors name the NCCL error
// string, ncclGetLastError's detail, the operation, the group and the peer.
//
// Reductions: F32, BF16, F16, I32 (Sum, Avg, Max). Gathers, broadcast and send/recv move any
// dtype. Not thread-safe: one thread calls it (the watchdog only aborts).
#pragma once

#include <memory>
#include <string>

#include "runtime/comm/communicator.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/device/cuda_context.h"

namespace tessera {

namespace detail {
struct NcclState;
}

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `host`'s ranks: one NCCL rank per host rank, on `context`'s device.
  NcclCommunicator(MpiCommunicator& host, std::shared_ptr<CudaContext> context, const std::string& name,
                   double timeout_s);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  // ncclGetVersion's code, e.g. 22809 for 2.28.9.
  static int nccl_version();

  int rank() const override;
  int size() const override;
  const std::string& name() const override;
  void set_step(int64_t step) override;
  CommTraffic traffic() const override;

  void all_reduce(Tensor& t, ReduceOp op) override;
  std::unique_ptr<CommRequest> all_reduce_async(Tensor& t, ReduceOp op) override;
  void all_gather(const Tensor& in, Tensor& out) override;
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override;
  // The request holds a reference to the tensor NCCL writes (gather) or reads (scatter) until waited for.
  std::unique_ptr<CommRequest> all_gather_async(const Tensor& in, Tensor& out) override;
  std::unique_ptr<CommRequest> reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override;
  void broadcast(Tensor& t, int root) override;
  // Inside begin/end_p2p_group the operation is issued at end_p2p_group; its request may be
  // waited for only after that.
  std::unique_ptr<CommRequest> send(const Tensor& t, int peer, int tag) override;
  std::unique_ptr<CommRequest> recv(Tensor& t, int peer, int tag) override;
  // Every rank's device work queued so far on this group has finished (a host wait).
  void barrier() override;
  // ncclCommSplit (collective over this group); a negative color leaves this rank out (nullptr).
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override;
  void begin_p2p_group() override;
  void end_p2p_group() override;
  bool stream_ordered_p2p() const override { return true; }

 private:
  explicit NcclCommunicator(std::shared_ptr<detail::NcclState> state);
  std::shared_ptr<detail::NcclState> state_;
};

}  // namespace tessera
