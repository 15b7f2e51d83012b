// MpiCommunicator: each operation validates its tensors, starts a non-blocking MPI call and
// hands it to an MpiRequest, whose wait() is the polling wait with the group's deadline.
#include "runtime/comm/mpi_communicator.h"

#include <climits>
#include <functional>

#include "runtime/comm/mpi_check.h"
#include "runtime/comm/mpi_comm_state.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/mpi_tuning.h"
#include "runtime/bf16.h"

namespace tessera {

using detail::CommState;
using detail::OpInfo;
using Keep = CommState::Keep;

namespace {

class MpiRequest final : public CommRequest {
 public:
  using OnComplete = std::function<void(const MPI_Status&)>;

  MpiRequest(std::shared_ptr<CommState> state, OpInfo info, Keep keep, OnComplete on_complete = {})
      : state_(std::move(state)), info_(info), keep_(std::move(keep)), on_complete_(std::move(on_complete)) {}

  ~MpiRequest() override {
    if (!done_ && request_ != MPI_REQUEST_NULL) {
      state_->orphans.push_back({request_, std::move(keep_)});
    }
  }

  MPI_Request* handle() { return &request_; }

  void wait() override {
    if (done_) return;
    MPI_Status status{};
    run_checked([&] { detail::wait_request(*state_, request_, &status, info_); });
    complete(status);
  }

  bool test() override {
    if (done_) return true;
    MPI_Status status{};
    int flag = 0;
    run_checked([&] {
      TESSERA_MPI_CHECK(MPI_Test(&request_, &flag, &status), "{} on {}", comm_op_name(info_.op),
                        detail::describe_group(*state_));
    });
    if (flag) complete(status);
    return flag != 0;
  }

 private:
  // An MPI error ends the request (MPI frees it and nulls the handle); a timeout leaves it
  // pending, and the destructor hands it to the orphans so its buffers stay alive.
  template <typename F>
  void run_checked(F&& f) {
    try {
      f();
    } catch (const Error&) {
      done_ = request_ == MPI_REQUEST_NULL;
      throw;
    }
  }

  void complete(const MPI_Status& status) {
    done_ = true;
    detail::finish_op(*state_, info_);
    keep_ = {};
    if (on_complete_) on_complete_(status);
  }

  std::shared_ptr<CommState> state_;
  OpInfo info_;
  Keep keep_;
  OnComplete on_complete_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool done_ = false;
};

// bfloat16 sum for MPI, which has no 16-bit float type: each hop adds in fp32 and rounds
// back (DiLoCo's bf16 outer deltas, runtime/train/outer_sync.h).
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
}

MPI_Op mpi_op(ReduceOp op, DType dtype) {
  if (dtype == DType::BF16) {
    static const MPI_Op bf16_sum_op = [] {
      MPI_Op o;
      MPI_Op_create(&bf16_sum, /*commute=*/1, &o);
      return o;
    }();
    return bf16_sum_op;
  }
  return op == ReduceOp::Max ? MPI_MAX : MPI_SUM;
}

const char* op_label(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Avg: return "avg";
    case ReduceOp::Max: return "max";
  }
  return "?";
}

// The MPI type that moves a tensor's elements unchanged.
MPI_Datatype payload_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return MPI_FLOAT;
    case DType::I32: return MPI_INT32_T;
    case DType::BF16:
    case DType::F16:
    case DType::U16: return MPI_UINT16_T;
  }
  return MPI_DATATYPE_NULL;
}

// Avg = sum, then divide by the group size in place.
void divide(const Tensor& t, int size) {
  const int64_t n = t.numel();
  if (t.dtype() == DType::F32) {
    float* x = t.f32();
    const float d = static_cast<float>(size);
    for (int64_t i = 0; i < n; ++i) x[i] /= d;
  } else if (t.dtype() == DType::BF16) {
    uint16_t* x = t.data<uint16_t>();
    for (int64_t i = 0; i < n; ++i) x[i] = f32_to_bf16(bf16_to_f32(x[i]) / static_cast<float>(size));
  } else {
    int32_t* x = t.i32();
    for (int64_t i = 0; i < n; ++i) x[i] /= size;
  }
}

bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  const char* pa = a.data<char>();
  const char* pb = b.data<char>();
  return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

}  // namespace

// ---- construction ----------------------------------------------------------------------

MpiCommunicator::MpiCommunicator(MPI_Comm comm, const std::string& name, double timeout_s) {
  TESSERA_CHECK(mpi_is_active(), "construct an MpiEnvironment before MpiCommunicator '{}'", name);
  TESSERA_REQUIRE(timeout_s > 0, "parallel.timeout_s must be > 0 seconds, got {}", timeout_s);
  auto state = std::make_shared<CommState>();
  state->name = name;
  state->timeout_s = timeout_s;
  detail::read_ranks(*state, comm);  // the duplicate has the same group
  state->comm = comm;                // for messages until the duplicate exists
  MPI_Comm dup = MPI_COMM_NULL;
  MPI_Request request;
  TESSERA_MPI_CHECK(MPI_Comm_idup(comm, &dup, &request), "MPI_Comm_idup for group '{}'", name);
  OpInfo info;
  info.op = CommOp::Create;
  detail::wait_request(*state, request, MPI_STATUS_IGNORE, info);
  state->comm = dup;
  state->owns_comm = true;
  TESSERA_MPI_CHECK(MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  detail::open_peer_board(*state);
  state_ = std::move(state);
}

MpiCommunicator::MpiCommunicator(std::shared_ptr<CommState> state) : state_(std::move(state)) {}

std::unique_ptr<MpiCommunicator> MpiCommunicator::world(double timeout_s) {
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, "world", timeout_s);
}

MpiCommunicator::~MpiCommunicator() = default;

int MpiCommunicator::rank() const { return state_->rank; }
int MpiCommunicator::size() const { return state_->size; }
const std::string& MpiCommunicator::name() const { return state_->name; }
void MpiCommunicator::set_step(int64_t step) { state_->step = step; }
double MpiCommunicator::timeout_s() const { return state_->timeout_s; }
MPI_Comm MpiCommunicator::mpi_comm() const { return state_->comm; }

void MpiCommunicator::set_timeout(double timeout_s) {
  TESSERA_REQUIRE(timeout_s > 0, "parallel.timeout_s must be > 0 seconds, got {}", timeout_s);
  state_->timeout_s = timeout_s;
}

int MpiCommunicator::world_rank(int group_rank) const {
  TESSERA_CHECK(group_rank >= 0 && group_rank < state_->size, "rank {} is not in {}", group_rank,
                detail::describe_group(*state_));
  return state_->world_ranks[group_rank];
}

// ---- argument checks ---------------------------------------------------------------------

namespace {

void check_tensor(const CommState& s, const char* op, const char* what, const Tensor& t) {
  TESSERA_CHECK(t.defined(), "{} on {}: `{}` is an undefined tensor", op, detail::describe_group(s), what);
  TESSERA_CHECK(t.device().kind == DeviceKind::CPU,
                "{} on {}: MpiCommunicator moves host tensors, `{}` is on CUDA:{} (use NcclCommunicator)", op,
                detail::describe_group(s), what, t.device().index);
  TESSERA_CHECK(t.numel() <= INT_MAX, "{} on {}: `{}` has {} elements, more than one MPI call takes (2^31-1)", op,
                detail::describe_group(s), what, t.numel());
}

MPI_Datatype reduction_type(const CommState& s, const char* op, ReduceOp reduce, DType dtype) {
  if (dtype == DType::F32) return MPI_FLOAT;
  if (dtype == DType::I32) return MPI_INT32_T;
  if (dtype == DType::BF16 && reduce != ReduceOp::Max) return MPI_UINT16_T;  // with mpi_op's bf16 sum
  throw Error(fmt::format("{} ({}) on {}: reductions take F32 or I32 tensors (and BF16 for sum and avg), got {}",
                          op, op_label(reduce), detail::describe_group(s), dtype_name(dtype)));
}

void check_peer(const CommState& s, const char* op, const char* role, int peer) {
  TESSERA_CHECK(peer >= 0 && peer < s.size, "{} on {}: {} {} is not a rank of the group (size {})", op,
                detail::describe_group(s), role, peer, s.size);
}

}  // namespace

// ---- collectives ---------------------------------------------------------------------------

namespace {

// The part of an all-reduce shared by the blocking and the async call.
struct AllReduceCall {
  MPI_Datatype type;
  OpInfo info;
  MpiRequest::OnComplete on_complete;
};

AllReduceCall prepare_all_reduce(CommState& s, Tensor& t, ReduceOp op) {
  check_tensor(s, "all_reduce", "t", t);
  AllReduceCall call;
  call.type = reduction_type(s, "all_reduce", op, t.dtype());
  call.info = detail::begin_op(s, CommOp::AllReduce, t.nbytes());
  if (op == ReduceOp::Avg && s.size > 1) {
    call.on_complete = [t, size = s.size](const MPI_Status&) { divide(t, size); };
  }
  hint_iallreduce_algorithm(s.size);
  return call;
}

void issue_all_reduce(const CommState& s, Tensor& t, ReduceOp op, MPI_Datatype type, MPI_Request* request) {
  TESSERA_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.data<char>(), static_cast<int>(t.numel()), type,
                                   mpi_op(op, t.dtype()), s.comm, request),
                    "all_reduce on {}", detail::describe_group(s));
}

}  // namespace

std::unique_ptr<CommRequest> MpiCommunicator::all_reduce_async(Tensor& t, ReduceOp op) {
  AllReduceCall call = prepare_all_reduce(*state_, t, op);
  auto request = std::make_unique<MpiRequest>(state_, call.info, Keep{t}, std::move(call.on_complete));
  issue_all_reduce(*state_, t, op, call.type, request->handle());
  return request;
}

// Not async + wait: the request lives on the stack, which keeps allocations off the
// small-message path, where the call's own overhead shows against MPI_Allreduce.
void MpiCommunicator::all_reduce(Tensor& t, ReduceOp op) {
  AllReduceCall call = prepare_all_reduce(*state_, t, op);
  MpiRequest request(state_, call.info, Keep{t}, std::move(call.on_complete));
  issue_all_reduce(*state_, t, op, call.type, request.handle());
  request.wait();
}

void MpiCommunicator::all_gather(const Tensor& in, Tensor& out) {
  CommState& s = *state_;
  check_tensor(s, "all_gather", "in", in);
  check_tensor(s, "all_gather", "out", out);
  TESSERA_CHECK(in.dtype() == out.dtype(), "all_gather on {}: `in` is {} but `out` is {}", detail::describe_group(s),
                dtype_name(in.dtype()), dtype_name(out.dtype()));
  TESSERA_CHECK(out.numel() == in.numel() * s.size,
                "all_gather on {}: `out` needs size() * in.numel() = {} * {} elements, has {}",
                detail::describe_group(s), s.size, in.numel(), out.numel());
  const void* send = in.data<char>();
  // In place when `in` is exactly this rank's block of `out`.
  if (in.nbytes() > 0 && in.data<char>() == out.data<char>() + s.rank * in.nbytes()) {
    send = MPI_IN_PLACE;
  } else {
    TESSERA_CHECK(!overlaps(in, out), "all_gather on {}: `in` overlaps `out` other than as this rank's block",
                  detail::describe_group(s));
  }
  const MPI_Datatype type = payload_type(in.dtype());
  const int count = static_cast<int>(in.numel());
  const OpInfo info = detail::begin_op(s, CommOp::AllGather, out.nbytes());
  MpiRequest request(state_, info, {in, out});
  TESSERA_MPI_CHECK(MPI_Iallgather(send, count, type, out.data<char>(), count, type, s.comm, request.handle()),
                    "all_gather on {}", detail::describe_group(s));
  request.wait();
}

void MpiCommunicator::reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) {
  CommState& s = *state_;
  check_tensor(s, "reduce_scatter", "in", in);
  check_tensor(s, "reduce_scatter", "out", out);
  TESSERA_CHECK(in.dtype() == out.dtype(), "reduce_scatter on {}: `in` is {} but `out` is {}",
                detail::describe_group(s), dtype_name(in.dtype()), dtype_name(out.dtype()));
  TESSERA_CHECK(in.numel() == out.numel() * s.size,
                "reduce_scatter on {}: `in` needs size() * out.numel() = {} * {} elements, has {}",
                detail::describe_group(s), s.size, out.numel(), in.numel());
  const MPI_Datatype type = reduction_type(s, "reduce_scatter", op, in.dtype());
  // MPI's in-place form reads and writes at the start of the buffer, not at this rank's
  // block, so an aliased output goes through a scratch tensor.
  Tensor result = overlaps(in, out) ? Tensor::empty(out.shape(), out.dtype()) : out;
  const OpInfo info = detail::begin_op(s, CommOp::ReduceScatter, in.nbytes());
  MpiRequest request(state_, info, {in, result});
  TESSERA_MPI_CHECK(MPI_Ireduce_scatter_block(in.data<char>(), result.data<char>(), static_cast<int>(out.numel()),
                                              type, mpi_op(op, in.dtype()), s.comm, request.handle()),
                    "reduce_scatter on {}", detail::describe_group(s));
  request.wait();
  if (op == ReduceOp::Avg && s.size > 1) divide(result, s.size);
  if (result.data<char>() != out.data<char>()) out.copy_from(result);
}

void MpiCommunicator::broadcast(Tensor& t, int root) {
  CommState& s = *state_;
  check_tensor(s, "broadcast", "t", t);
  check_peer(s, "broadcast", "root", root);
  const OpInfo info = detail::begin_op(s, CommOp::Broadcast, t.nbytes());
  MpiRequest request(state_, info, {t});
  TESSERA_MPI_CHECK(MPI_Ibcast(t.data<char>(), static_cast<int>(t.numel()), payload_type(t.dtype()), root, s.comm,
                               request.handle()),
                    "broadcast on {}", detail::describe_group(s));
  request.wait();
}

void MpiCommunicator::barrier() {
  CommState& s = *state_;
  const OpInfo info = detail::begin_op(s, CommOp::Barrier, 0);
  MpiRequest request(state_, info, Keep{});
  TESSERA_MPI_CHECK(MPI_Ibarrier(s.comm, request.handle()), "barrier on {}", detail::describe_group(s));
  request.wait();
}

// ---- point to point ------------------------------------------------------------------------

namespace {

void check_tag(const CommState& s, const char* op, int tag) {
  int* upper = nullptr;
  int found = 0;
  TESSERA_MPI_CHECK(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &upper, &found), "MPI_Comm_get_attr(MPI_TAG_UB)");
  const int max_tag = found && upper != nullptr ? *upper : 32767;
  TESSERA_CHECK(tag >= 0 && tag <= max_tag, "{} on {}: tag {} is outside [0, {}]", op, detail::describe_group(s),
                tag, max_tag);
}

}  // namespace

std::unique_ptr<CommRequest> MpiCommunicator::send(const Tensor& t, int peer, int tag) {
  CommState& s = *state_;
  check_tensor(s, "send", "t", t);
  check_peer(s, "send", "peer", peer);
  check_tag(s, "send", tag);
  const OpInfo info = detail::begin_op(s, CommOp::Send, t.nbytes(), peer, tag);
  auto request = std::make_unique<MpiRequest>(state_, info, Keep{t});
  TESSERA_MPI_CHECK(MPI_Isend(t.data<char>(), static_cast<int>(t.numel()), payload_type(t.dtype()), peer, tag,
                              s.comm, request->handle()),
                    "send to rank {} tag {} on {}", peer, tag, detail::describe_group(s));
  return request;
}

std::unique_ptr<CommRequest> MpiCommunicator::recv(Tensor& t, int peer, int tag) {
  CommState& s = *state_;
  check_tensor(s, "recv", "t", t);
  check_peer(s, "recv", "peer", peer);
  check_tag(s, "recv", tag);
  const OpInfo info = detail::begin_op(s, CommOp::Recv, t.nbytes(), peer, tag);
  const MPI_Datatype type = payload_type(t.dtype());
  const int expected = static_cast<int>(t.numel());
  auto check_count = [type, expected, peer, tag, group = detail::describe_group(s)](const MPI_Status& status) {
    int received = 0;
    TESSERA_MPI_CHECK(MPI_Get_count(&status, type, &received), "MPI_Get_count of a recv from rank {}", peer);
    TESSERA_CHECK(received == expected, "recv from rank {} tag {} on {}: expected {} elements, received {}", peer,
                  tag, group, expected, received);
  };
  auto request = std::make_unique<MpiRequest>(state_, info, Keep{t}, std::move(check_count));
  TESSERA_MPI_CHECK(MPI_Irecv(t.data<char>(), expected, type, peer, tag, s.comm, request->handle()),
                    "recv from rank {} tag {} on {}", peer, tag, detail::describe_group(s));
  return request;
}

// ---- split -------------------------------------------------------------------------------

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key, const std::string& name) {
  CommState& s = *state_;
  // A timed barrier first: once every rank has arrived, the blocking MPI_Comm_split (MPI has
  // no non-blocking split) cannot hang on a missing peer.
  const OpInfo info = detail::begin_op(s, CommOp::Split, 0);
  {
    MpiRequest request(state_, info, Keep{});
    TESSERA_MPI_CHECK(MPI_Ibarrier(s.comm, request.handle()), "split on {}", detail::describe_group(s));
    request.wait();
  }
  MPI_Comm comm = MPI_COMM_NULL;
  TESSERA_MPI_CHECK(MPI_Comm_split(s.comm, color < 0 ? MPI_UNDEFINED : color, key, &comm),
                    "split into '{}' on {}", name, detail::describe_group(s));
  if (comm == MPI_COMM_NULL) return nullptr;
  auto child = std::make_shared<CommState>();
  child->comm = comm;
  child->owns_comm = true;
  child->name = name;
  child->timeout_s = s.timeout_s;
  child->step = s.step;
  child->history = s.history;
  TESSERA_MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  detail::read_ranks(*child, comm);
  detail::open_peer_board(*child);
  return std::unique_ptr<Communicator>(new MpiCommunicator(std::move(child)));
}

}  // namespace tessera
