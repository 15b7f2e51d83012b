// MpiCommunicator: the Communicator over an MPI communicator (Open MPI, host tensors).
// Every operation is a non-blocking MPI call finished by a polling wait with a deadline, so a
// peer that never arrives becomes a tessera::Error naming the operation, the group, the step
// and the peer, instead of a hang. See docs/parallel_grid.md for how groups are made.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "runtime/comm/communicator.h"

namespace tessera {

namespace detail {
struct CommState;
}

// Dtypes: all_gather, broadcast, send and recv move any dtype (BF16/F16/U16 as a 16-bit
// payload). Reductions (all_reduce, reduce_scatter) take F32 and I32 and reject 16-bit
// tensors with an error; reduce those in F32. Avg is a sum followed by a division by size()
// (truncating for I32). Element counts are limited to 2^31 - 1 per call.
//
// Timeouts: each wait gives up after timeout_s seconds, measured from the start of that wait
// (for async requests: from wait(), so compute between launch and wait does not count).
// After a timeout the communicator refuses further calls; the caller reports the error and
// calls abort_job(). The message names the peers that did not arrive when they run on this
// node (read from a shared-memory PeerBoard), else says that MPI cannot tell which.
//
// Progress: Open MPI advances non-blocking collectives only inside MPI calls, so call test()
// on outstanding requests between pieces of compute (e.g. between layers in backward).
// Not thread-safe: call from one thread at a time (MPI_THREAD_SERIALIZED).
class MpiCommunicator final : public Communicator {
 public:
  // Duplicates `comm` (collective: every rank of `comm` calls it) into a group called `name`.
  // timeout_s (config parallel.timeout_s) must be > 0. Needs an MpiEnvironment.
  MpiCommunicator(MPI_Comm comm, const std::string& name, double timeout_s);
  // The usual entry point: a duplicate of MPI_COMM_WORLD named "world".
  static std::unique_ptr<MpiCommunicator> world(double timeout_s);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override;
  int size() const override;
  const std::string& name() const override;
  void set_step(int64_t step) override;
  CommTraffic traffic() const override;

  // The MPI_COMM_WORLD rank of this group's rank `group_rank` (default: this rank).
  int world_rank(int group_rank) const;
  int world_rank() const { return world_rank(rank()); }
  double timeout_s() const;
  void set_timeout(double timeout_s);
  // The underlying communicator, for raw MPI next to this one (benchmarks, NCCL id exchange).
  MPI_Comm mpi_comm() const;

  void all_reduce(Tensor& t, ReduceOp op) override;
  std::unique_ptr<CommRequest> all_reduce_async(Tensor& t, ReduceOp op) override;
  // `in` may be this rank's block of `out` (in-place gather, as ZeRO uses).
  void all_gather(const Tensor& in, Tensor& out) override;
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override;
  std::unique_ptr<CommRequest> all_gather_async(const Tensor& in, Tensor& out) override;
  std::unique_ptr<CommRequest> reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override;
  void broadcast(Tensor& t, int root) override;
  std::unique_ptr<CommRequest> send(const Tensor& t, int peer, int tag) override;
  // Fails unless exactly t.numel() elements arrive.
  std::unique_ptr<CommRequest> recv(Tensor& t, int peer, int tag) override;
  void barrier() override;
  // Collective over this group. A negative color leaves this rank out (returns nullptr).
  // The new group inherits the timeout and the step.
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override;

 private:
  explicit MpiCommunicator(std::shared_ptr<detail::CommState> state);
  std::shared_ptr<detail::CommState> state_;
};

}  // namespace tessera
