// The Communicator interface: collectives and point-to-point over one group of ranks.
// Implementations: MpiCommunicator (OpenMPI, CPU tensors) and NcclCommunicator (NCCL, CUDA
// tensors; built with CUDA only). Communicators are created and
// passed explicitly (ParallelGrid owns them); there is no global communicator.
#pragma once

#include <memory>
#include <string>

#include "runtime/tensor.h"

namespace tessera {

enum class ReduceOp { Sum, Avg, Max };

// Bytes this rank has handed to each kind of collective since the communicator was made: the
// whole buffer of an all-reduce, the output of an all-gather, the input of a reduce-scatter.
// A ring collective over n ranks sends (n - 1) / n of that (twice for an all-reduce).
struct CommTraffic {
  double all_reduce = 0, all_gather = 0, reduce_scatter = 0;
  // What a ring implementation sends for these payloads over n ranks.
  double ring_sent_bytes(int n) const {
    return n <= 1 ? 0.0 : (2.0 * all_reduce + all_gather + reduce_scatter) * (n - 1) / n;
  }
};

// A pending non-blocking operation. wait() blocks until it completes or the communicator's
// timeout expires (then it throws, naming the operation, the group and the peer).
class CommRequest {
 public:
  virtual ~CommRequest() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;  // true when complete
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Names the group in error messages ("world", "tp", "dp", "pp").
  virtual const std::string& name() const = 0;
  // The training step reported in timeout messages.
  virtual void set_step(int64_t step) = 0;
  virtual CommTraffic traffic() const = 0;

  // In place over the whole (contiguous) tensor.
  virtual void all_reduce(Tensor& t, ReduceOp op) = 0;
  virtual std::unique_ptr<CommRequest> all_reduce_async(Tensor& t, ReduceOp op) = 0;
  // out has size() * in.numel() elements: rank i's `in` lands at offset i * in.numel().
  virtual void all_gather(const Tensor& in, Tensor& out) = 0;
  // in has size() * out.numel() elements: rank i receives the reduction of block i.
  virtual void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) = 0;
  // The same, non-blocking (ZeRO-2/3): `in`, `out` untouched until the request completes, not overlapping,
  // except an all-gather's `in` may be exactly this rank's block of `out` (in place: MPI and NCCL take it).
  virtual std::unique_ptr<CommRequest> all_gather_async(const Tensor& in, Tensor& out) = 0;
  virtual std::unique_ptr<CommRequest> reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) = 0;
  virtual void broadcast(Tensor& t, int root) = 0;
  virtual std::unique_ptr<CommRequest> send(const Tensor& t, int peer, int tag) = 0;
  virtual std::unique_ptr<CommRequest> recv(Tensor& t, int peer, int tag) = 0;
  virtual void barrier() = 0;
  // Brackets the sends and receives of one pipeline schedule step. NCCL must issue them as one
  // group (ncclGroupStart/End): a receive posted ahead of the matching send would otherwise
  // block the stream the send needs. MPI's calls are non-blocking already, so by default nothing.
  virtual void begin_p2p_group() {}
  virtual void end_p2p_group() {}
  // True when sends and receives run in issue order on one stream and a send holds it until the
  // receiver takes it (NCCL): receives must not be posted ahead (partitioner/stream_transfers.h).
  virtual bool stream_ordered_p2p() const { return false; }
  // Ranks with the same color form a new group, ordered by key.
  virtual std::unique_ptr<Communicator> split(int color, int key, const std::string& name) = 0;
};

}  // namespace tessera
