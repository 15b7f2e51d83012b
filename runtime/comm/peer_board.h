// PeerBoard: a node-local shared-memory table where every rank of one communicator
// publishes the communication call it is in. MPI cannot say which peer a stuck collective
// is waiting for; a rank that times out reads this board to name the peers that never
// arrived. Ranks on other nodes are not visible (read() returns nothing for them).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

enum class CommOp : int32_t {
  None = 0, AllReduce, AllGather, ReduceScatter, Broadcast, Send, Recv, Barrier, Split, Create
};
const char* comm_op_name(CommOp op);  // "all_reduce", ...

// What one rank last did on the communicator.
struct PeerActivity {
  int64_t seq = 0;   // collectives entered so far (every rank enters them in the same order)
  int64_t step = -1;
  CommOp op = CommOp::None;
  bool active = false;  // still inside `op`
  int32_t peer = -1;    // send/recv: the group rank on the other side
  int32_t tag = -1;
};
// "barrier #3 (finished) at step 7", "recv from rank 2 tag 5 (in progress)", "no call yet".
std::string describe_activity(const PeerActivity& activity);

class PeerBoard {
 public:
  // Opens (creating if needed) the segment `shm_name` with one slot per rank. `local[r]` says
  // whether rank r shares this node. Returns nullptr when shared memory is unavailable; the
  // communicator then reports timeouts without naming peers.
  static std::unique_ptr<PeerBoard> open(const std::string& shm_name, int rank,
                                         std::vector<bool> local);
  ~PeerBoard();
  PeerBoard(const PeerBoard&) = delete;
  PeerBoard& operator=(const PeerBoard&) = delete;

  // Removes the name once every local rank has opened it; the mapping stays valid.
  void unlink();
  // Publishes this rank's entry into an operation; returns a token for finish().
  uint64_t enter(const PeerActivity& activity);
  // Marks the operation finished, unless a later enter() has replaced it.
  void finish(uint64_t token);
  std::optional<PeerActivity> read(int rank) const;

 private:
  PeerBoard() = default;
  struct Slot;
  Slot* slot(int rank) const;

  std::string name_;
  void* base_ = nullptr;
  size_t bytes_ = 0;
  int rank_ = 0;
  std::vector<bool> local_;
  uint64_t token_ = 0;
  bool linked_ = false;
};

}  // namespace tessera
