// PeerBoard over POSIX shared memory (shm_open + mmap), written with relaxed atomics: it is
// diagnostic state, read only when something already went wrong.
#include "runtime/comm/peer_board.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

#include <fmt/format.h>

namespace tessera {

// One cache line per rank so publishing never contends with a neighbour's slot.
struct alignas(64) PeerBoard::Slot {
  int64_t seq;
  int64_t step;
  int32_t op;
  int32_t active;
  int32_t peer;
  int32_t tag;
};

namespace {

template <typename T>
void store(T& field, T value) {
  std::atomic_ref<T>(field).store(value, std::memory_order_relaxed);
}
template <typename T>
T load(T& field) {
  return std::atomic_ref<T>(field).load(std::memory_order_relaxed);
}

}  // namespace

const char* comm_op_name(CommOp op) {
  switch (op) {
    case CommOp::None: return "no call";
    case CommOp::AllReduce: return "all_reduce";
    case CommOp::AllGather: return "all_gather";
    case CommOp::ReduceScatter: return "reduce_scatter";
    case CommOp::Broadcast: return "broadcast";
    case CommOp::Send: return "send";
    case CommOp::Recv: return "recv";
    case CommOp::Barrier: return "barrier";
    case CommOp::Split: return "split";
    case CommOp::Create: return "communicator creation";
  }
  return "?";
}

std::string describe_activity(const PeerActivity& a) {
  if (a.op == CommOp::None) return "no communication call yet";
  std::string what;
  if (a.op == CommOp::Send) {
    what = fmt::format("send to rank {} tag {}", a.peer, a.tag);
  } else if (a.op == CommOp::Recv) {
    what = fmt::format("recv from rank {} tag {}", a.peer, a.tag);
  } else {
    what = fmt::format("{} #{}", comm_op_name(a.op), a.seq);
  }
  what += a.active ? " (in progress)" : " (finished)";
  if (a.step >= 0) what += fmt::format(" at step {}", a.step);
  return what;
}

std::unique_ptr<PeerBoard> PeerBoard::open(const std::string& shm_name, int rank, std::vector<bool> local) {
  const size_t bytes = sizeof(Slot) * std::max<size_t>(local.size(), 1);
  const int fd = ::shm_open(shm_name.c_str(), O_CREAT | O_RDWR, 0600);
  if (fd < 0) return nullptr;
  // Every local rank truncates to the same size; the first one zero-fills the segment.
  void* base = MAP_FAILED;
  if (::ftruncate(fd, static_cast<off_t>(bytes)) == 0) {
    base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  ::close(fd);
  if (base == MAP_FAILED) {
    ::shm_unlink(shm_name.c_str());
    return nullptr;
  }
  std::unique_ptr<PeerBoard> board(new PeerBoard());
  board->name_ = shm_name;
  board->base_ = base;
  board->bytes_ = bytes;
  board->rank_ = rank;
  board->local_ = std::move(local);
  board->linked_ = true;
  return board;
}

PeerBoard::~PeerBoard() {
  unlink();
  if (base_ != nullptr) ::munmap(base_, bytes_);
}

void PeerBoard::unlink() {
  // Several ranks unlink the same name; ENOENT from the later ones is expected.
  if (linked_) ::shm_unlink(name_.c_str());
  linked_ = false;
}

PeerBoard::Slot* PeerBoard::slot(int rank) const { return static_cast<Slot*>(base_) + rank; }

uint64_t PeerBoard::enter(const PeerActivity& a) {
  Slot* s = slot(rank_);
  store(s->step, a.step);
  store(s->op, static_cast<int32_t>(a.op));
  store(s->peer, a.peer);
  store(s->tag, a.tag);
  store(s->active, int32_t{1});
  std::atomic_ref<int64_t>(s->seq).store(a.seq, std::memory_order_release);
  return ++token_;
}

void PeerBoard::finish(uint64_t token) {
  if (token == token_) store(slot(rank_)->active, int32_t{0});
}

std::optional<PeerActivity> PeerBoard::read(int rank) const {
  if (rank < 0 || rank >= static_cast<int>(local_.size()) || !local_[rank]) return std::nullopt;
  Slot* s = slot(rank);
  PeerActivity a;
  a.seq = std::atomic_ref<int64_t>(s->seq).load(std::memory_order_acquire);
  a.step = load(s->step);
  a.op = static_cast<CommOp>(load(s->op));
  a.active = load(s->active) != 0;
  a.peer = load(s->peer);
  a.tag = load(s->tag);
  return a;
}

}  // namespace tessera
