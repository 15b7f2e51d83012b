// Internal to MpiCommunicator: the state shared by a communicator and its pending requests,
// the polling wait with its deadline, and the timeout messages.
#pragma once

#include <mpi.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/comm/peer_board.h"
#include "runtime/tensor.h"

namespace tessera::detail {

// The last operations this process started on any of its groups (a communicator and the
// groups split from it share one), printed with a timeout so a user can see where each rank
// was: the timed-out rank's own history, next to the peer's last call from the board.
class OpHistory {
 public:
  struct Entry {
    std::string group;
    const char* op = "";
    int64_t seq = 0, step = -1;
    int peer = -1;
    bool done = false;
  };
  // Returns the entry's id for finish().
  uint64_t start(Entry entry);
  void finish(uint64_t id);
  // "dp all_reduce #6 (step 7, done), tp all_gather #40 (step 7, waiting)", oldest first.
  std::string describe() const;

 private:
  static constexpr size_t kEntries = 8;
  std::array<Entry, kEntries> ring_{};
  uint64_t next_ = 0;
};

struct CommState {
  MPI_Comm comm = MPI_COMM_NULL;
  bool owns_comm = false;
  std::string name;
  int rank = 0;
  int size = 1;
  std::vector<int> world_ranks;  // group rank -> MPI_COMM_WORLD rank
  double timeout_s = 300.0;
  int64_t step = -1;             // < 0: not in a training step yet
  int64_t seq = 0;               // collectives entered on this communicator
  std::unique_ptr<PeerBoard> board;
  std::shared_ptr<OpHistory> history = std::make_shared<OpHistory>();  // shared with splits
  std::string failure;           // set by the first timeout; the group is unusable after it
  CommTraffic traffic;           // collective payloads entered on this communicator

  // Requests dropped before completion: MPI may still write into their buffers, so the
  // tensors stay alive until a later call sees the request finish.
  using Keep = std::array<Tensor, 2>;  // the tensors an operation reads or writes
  struct Orphan {
    MPI_Request request;
    Keep keep;
  };
  std::vector<Orphan> orphans;

  ~CommState();
  void reap_orphans();
};

// One operation, for the board and for messages.
struct OpInfo {
  CommOp op = CommOp::None;
  int64_t seq = 0;   // collectives: their sequence number on the group
  int peer = -1;     // send/recv: the group rank on the other side
  int tag = -1;
  size_t bytes = 0;    // payload per rank, to size the busy-poll window
  uint64_t token = 0;  // PeerBoard token
  uint64_t history_id = 0;
};

// Starts an operation: refuses a failed group, reaps orphans, numbers collectives and
// publishes the call on the board.
OpInfo begin_op(CommState& s, CommOp op, size_t bytes, int peer = -1, int tag = -1);
void finish_op(CommState& s, const OpInfo& info);

// Polls `request` with MPI_Test until it completes or the timeout expires (then marks the
// group failed and throws the timeout error).
void wait_request(CommState& s, MPI_Request& request, MPI_Status* status, const OpInfo& info);

// "group 'dp' (rank 1 of 2, world rank 3)"
std::string describe_group(const CommState& s);
// The full timeout message (public for tests of the wording).
std::string timeout_message(const CommState& s, const OpInfo& info);

// Fills s.rank, s.size and s.world_ranks from s.comm (or from `comm` when given).
void read_ranks(CommState& s, MPI_Comm comm);
// Collective: creates the PeerBoard for s.comm (skipped for a single rank).
void open_peer_board(CommState& s);

}  // namespace tessera::detail
