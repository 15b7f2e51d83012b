// The polling wait with a deadline, the timeout messages, and the per-group bookkeeping
// (ranks, peer board, orphaned requests) behind MpiCommunicator.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "runtime/comm/mpi_check.h"
#include "runtime/comm/mpi_comm_state.h"
#include "runtime/comm/mpi_environment.h"

namespace tessera::detail {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// Polling: spin on MPI_Test while the transfer is plausibly still moving (Open MPI only
// progresses a non-blocking collective inside MPI calls, and the blocking MPI_Allreduce we
// are measured against spins the whole time), then sleep between polls so ranks
// oversubscribed on few cores leave the CPU to the peers they wait for. The spin window is
// 2 ms plus the time the message takes at a pessimistic 200 MB/s (5 ns per byte: 84 ms for
// 16 MiB). A sleep is at most 1/32 of the time already waited (adding at most ~3% to a
// wait) and at most 1 ms.
constexpr auto kSpinWindow = std::chrono::microseconds(2000);
constexpr int64_t kSpinNsPerByte = 5;
constexpr auto kMinSleep = std::chrono::microseconds(20);
constexpr auto kMaxSleep = std::chrono::microseconds(1000);

std::string format_seconds(double s) {
  if (std::abs(s * 10 - std::round(s * 10)) < 1e-9) return fmt::format("{:.1f}", s);
  return fmt::format("{:g}", s);
}

// "peer rank 1 (world rank 1)" or "peer ranks 1, 3 (world ranks 1, 3)", at most 8 listed.
std::string describe_peers(const CommState& s, const std::vector<int>& ranks) {
  constexpr size_t kMaxListed = 8;
  std::vector<int> group;
  std::vector<int> world;
  for (size_t i = 0; i < ranks.size() && i < kMaxListed; ++i) {
    group.push_back(ranks[i]);
    world.push_back(s.world_ranks[ranks[i]]);
  }
  const std::string more = ranks.size() > kMaxListed ? fmt::format(" and {} more", ranks.size() - kMaxListed) : "";
  if (ranks.size() == 1) return fmt::format("peer rank {} (world rank {})", group[0], world[0]);
  return fmt::format("peer ranks {}{} (world ranks {}{})", fmt::join(group, ", "), more,
                     fmt::join(world, ", "), more);
}

std::string collective_detail(const CommState& s, const OpInfo& info) {
  const char* op = comm_op_name(info.op);
  if (!s.board) {
    return fmt::format("waiting for a peer that did not arrive in {} #{} (MPI cannot tell which)", op, info.seq);
  }
  std::vector<int> missing, remote, mismatched;
  for (int r = 0; r < s.size; ++r) {
    if (r == s.rank) continue;
    const auto peer = s.board->read(r);
    if (!peer) {
      remote.push_back(r);
    } else if (peer->seq < info.seq) {
      missing.push_back(r);
    } else if (peer->seq == info.seq && peer->op != info.op) {
      mismatched.push_back(r);
    }
  }
  const std::string unchecked =
      remote.empty() ? "" : fmt::format("; {} on other nodes could not be checked", describe_peers(s, remote));
  if (!missing.empty()) {
    std::string text = fmt::format("waiting for {}, which {} not entered this {} (#{})", describe_peers(s, missing),
                                   missing.size() == 1 ? "has" : "have", op, info.seq);
    if (missing.size() == 1) text += "; its last call: " + describe_activity(*s.board->read(missing[0]));
    return text + unchecked;
  }
  if (!mismatched.empty()) {
    const auto peer = *s.board->read(mismatched[0]);
    return fmt::format("{} entered {} #{} instead of {}: the ranks called different collectives{}",
                       describe_peers(s, mismatched), comm_op_name(peer.op), info.seq, op, unchecked);
  }
  if (!remote.empty()) {
    return fmt::format("the peers on this node all entered {} #{}; waiting for one of {} on other nodes", op,
                       info.seq, describe_peers(s, remote));
  }
  return fmt::format("every peer entered {} #{} but it did not complete (a peer may be stuck inside it)", op,
                     info.seq);
}

std::string p2p_detail(const CommState& s, const OpInfo& info) {
  std::string text = fmt::format("waiting for {} to {} tag {}", describe_peers(s, {info.peer}),
                                 info.op == CommOp::Send ? "receive" : "send", info.tag);
  if (s.board && info.peer != s.rank) {
    if (const auto peer = s.board->read(info.peer)) text += "; that peer's last call: " + describe_activity(*peer);
  }
  return text;
}

}  // namespace

CommState::~CommState() {
  if (!mpi_is_active()) return;
  reap_orphans();
  // Buffers MPI may still write into must outlive this object; they are leaked on purpose.
  for (Orphan& orphan : orphans) new Keep(std::move(orphan.keep));
  // Tolerated teardown failure: a destructor cannot throw, and a communicator that cannot be
  // freed only leaks a handle.
  if (owns_comm && comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
}

void CommState::reap_orphans() {
  std::erase_if(orphans, [](Orphan& orphan) {
    int done = 0;
    // An error on a request nobody waits for has no one to report to; drop it.
    return MPI_Test(&orphan.request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done;
  });
}

std::string describe_group(const CommState& s) {
  return fmt::format("group '{}' (rank {} of {}, world rank {})", s.name, s.rank, s.size, s.world_ranks[s.rank]);
}

uint64_t OpHistory::start(Entry entry) {
  ring_[next_ % kEntries] = std::move(entry);
  return next_++;
}

void OpHistory::finish(uint64_t id) {
  // An entry already overwritten by newer ones is simply gone.
  if (id + kEntries >= next_) ring_[id % kEntries].done = true;
}

std::string OpHistory::describe() const {
  std::vector<std::string> parts;
  for (uint64_t id = next_ > kEntries ? next_ - kEntries : 0; id < next_; ++id) {
    const Entry& e = ring_[id % kEntries];
    std::string where = e.peer >= 0 ? fmt::format(" peer {}", e.peer) : fmt::format(" #{}", e.seq);
    parts.push_back(fmt::format("{} {}{} (step {}, {})", e.group, e.op, where, e.step, e.done ? "done" : "waiting"));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::string timeout_message(const CommState& s, const OpInfo& info) {
  std::string text = fmt::format("timeout after {} s in {} on {}", format_seconds(s.timeout_s),
                                 comm_op_name(info.op), describe_group(s));
  if (s.step >= 0) text += fmt::format(" at step {}", s.step);
  const bool p2p = info.op == CommOp::Send || info.op == CommOp::Recv;
  text += ": " + (p2p ? p2p_detail(s, info) : collective_detail(s, info));
  if (s.history) text += "; this rank's last calls, oldest first: " + s.history->describe();
  return text;
}

OpInfo begin_op(CommState& s, CommOp op, size_t bytes, int peer, int tag) {
  if (!s.failure.empty()) {
    throw Error(fmt::format("{} on {} refused: the group is unusable after an earlier timeout ({})",
                            comm_op_name(op), describe_group(s), s.failure));
  }
  if (!s.orphans.empty()) s.reap_orphans();
  OpInfo info;
  info.op = op;
  info.peer = peer;
  info.tag = tag;
  info.bytes = bytes;
  const bool p2p = op == CommOp::Send || op == CommOp::Recv;
  info.seq = p2p ? s.seq : ++s.seq;
  if (s.history) info.history_id = s.history->start({s.name, comm_op_name(op), info.seq, s.step, peer, false});
  if (s.board) {
    PeerActivity activity;
    activity.seq = s.seq;
    activity.step = s.step;
    activity.op = op;
    activity.peer = peer;
    activity.tag = tag;
    info.token = s.board->enter(activity);
  }
  return info;
}

void finish_op(CommState& s, const OpInfo& info) {
  if (s.history) s.history->finish(info.history_id);
  if (s.board) s.board->finish(info.token);
}

void wait_request(CommState& s, MPI_Request& request, MPI_Status* status, const OpInfo& info) {
  const auto start = Clock::now();
  const Seconds limit(s.timeout_s);
  const auto spin = kSpinWindow + std::chrono::nanoseconds(static_cast<int64_t>(info.bytes) * kSpinNsPerByte);
  while (true) {
    int done = 0;
    TESSERA_MPI_CHECK(MPI_Test(&request, &done, status), "{} on {}", comm_op_name(info.op), describe_group(s));
    if (done) return;
    const auto elapsed = Clock::now() - start;
    if (elapsed >= limit) {
      s.failure = timeout_message(s, info);
      throw Error(s.failure);
    }
    if (elapsed < spin) continue;
    std::this_thread::sleep_for(
        std::clamp(std::chrono::duration_cast<std::chrono::microseconds>(elapsed / 32), kMinSleep, kMaxSleep));
  }
}

void read_ranks(CommState& s, MPI_Comm comm) {
  TESSERA_MPI_CHECK(MPI_Comm_rank(comm, &s.rank), "MPI_Comm_rank for group '{}'", s.name);
  TESSERA_MPI_CHECK(MPI_Comm_size(comm, &s.size), "MPI_Comm_size for group '{}'", s.name);
  MPI_Group group, world;
  TESSERA_MPI_CHECK(MPI_Comm_group(comm, &group), "MPI_Comm_group");
  TESSERA_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world), "MPI_Comm_group");
  std::vector<int> ranks(static_cast<size_t>(s.size));
  for (int r = 0; r < s.size; ++r) ranks[r] = r;
  s.world_ranks.assign(ranks.size(), MPI_UNDEFINED);
  const int rc = MPI_Group_translate_ranks(group, s.size, ranks.data(), world, s.world_ranks.data());
  // Freed before the check so that a failed translation does not leak them; a failing free of
  // a group handle is tolerated (it only leaks the handle).
  MPI_Group_free(&group);
  MPI_Group_free(&world);
  TESSERA_MPI_CHECK(rc, "MPI_Group_translate_ranks for group '{}'", s.name);
}

void open_peer_board(CommState& s) {
  if (s.size == 1) return;
  // Rank 0 names the segment; the name reaches the others with the first (timed) collective.
  static std::atomic<uint64_t> counter{0};
  char name[64] = {};
  if (s.rank == 0) {
    const auto nonce = static_cast<unsigned long long>(Clock::now().time_since_epoch().count());
    fmt::format_to_n(name, sizeof(name) - 1, "/tessera-{}-{}-{:x}", ::getpid(), counter++, nonce);
  }
  OpInfo info;
  info.op = CommOp::Create;
  MPI_Request request;
  TESSERA_MPI_CHECK(MPI_Ibcast(name, sizeof(name), MPI_CHAR, 0, s.comm, &request), "MPI_Ibcast on {}",
                    describe_group(s));
  wait_request(s, request, MPI_STATUS_IGNORE, info);

  // Every rank has arrived, so this blocking split cannot hang on a missing peer.
  MPI_Comm node;
  TESSERA_MPI_CHECK(MPI_Comm_split_type(s.comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
                    "MPI_Comm_split_type on {}", describe_group(s));
  int node_size = 0;
  TESSERA_MPI_CHECK(MPI_Comm_size(node, &node_size), "MPI_Comm_size of the node of {}", describe_group(s));
  MPI_Group node_group, group;
  TESSERA_MPI_CHECK(MPI_Comm_group(node, &node_group), "MPI_Comm_group of the node of {}", describe_group(s));
  TESSERA_MPI_CHECK(MPI_Comm_group(s.comm, &group), "MPI_Comm_group of {}", describe_group(s));
  std::vector<int> node_ranks(static_cast<size_t>(node_size)), ranks(static_cast<size_t>(node_size));
  for (int r = 0; r < node_size; ++r) node_ranks[r] = r;
  const int rc = MPI_Group_translate_ranks(node_group, node_size, node_ranks.data(), group, ranks.data());
  // Freed before the check; a failing free of a handle is tolerated (it only leaks the handle).
  MPI_Group_free(&node_group);
  MPI_Group_free(&group);
  MPI_Comm_free(&node);
  TESSERA_MPI_CHECK(rc, "MPI_Group_translate_ranks of the node of {}", describe_group(s));
  std::vector<bool> local(static_cast<size_t>(s.size), false);
  for (int r : ranks) {
    if (r >= 0 && r < s.size) local[r] = true;
  }

  s.board = PeerBoard::open(name, s.rank, std::move(local));
  TESSERA_MPI_CHECK(MPI_Ibarrier(s.comm, &request), "MPI_Ibarrier on {}", describe_group(s));
  wait_request(s, request, MPI_STATUS_IGNORE, info);
  if (s.board) s.board->unlink();
}

}  // namespace tessera::detail
