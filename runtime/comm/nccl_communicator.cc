// NcclCommunicator: NCCL collectives and point-to-point on a stream of their own, ordered against
// the compute stream with events, under the watchdog's deadlines.
#include "runtime/comm/nccl_communicator.h"

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "runtime/comm/mpi_check.h"
#include "runtime/comm/nccl_watchdog.h"

namespace tessera {
namespace detail {

struct NcclState {
  ncclComm_t comm = nullptr;
  std::string name;
  int rank = 0, size = 1, world_rank = 0;
  double timeout_s = 300.0;
  int64_t step = -1;
  std::shared_ptr<CudaContext> context;
  cudaStream_t stream = nullptr;  // NCCL's own
  std::shared_ptr<NcclWatchdog> watchdog;  // shared with the groups split from this one
  bool in_group = false;
  CommTraffic traffic;  // payload bytes per kind of collective, as MpiCommunicator counts them
  std::vector<std::function<ncclResult_t()>> group_calls;        // issued at end_p2p_group
  std::vector<std::shared_ptr<std::shared_ptr<CudaEvent>>> group_ends;  // filled at end_p2p_group

  // An aborted communicator is freed by ncclCommAbort; destroying it again would be a double free.
  ~NcclState() {
    if (comm != nullptr && watchdog != nullptr && !watchdog->aborted(comm)) ncclCommDestroy(comm);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
};

}  // namespace detail

namespace {

using detail::NcclState;

std::string group_of(const NcclState& s) {
  return fmt::format("group '{}' (NCCL rank {} of {}, world rank {})", s.name, s.rank, s.size, s.world_rank);
}

std::string peer_of(int peer) { return peer >= 0 ? fmt::format(" with peer {}", peer) : std::string(); }

// Throws the watchdog's timeout message when it aborted this group, else nothing.
void throw_if_failed(NcclState& s) {
  const std::string failure = s.watchdog->take_failure(s.comm);
  if (!failure.empty()) throw Error(failure);
}

void check(ncclResult_t r, NcclState& s, const char* op, int peer) {
  if (r == ncclSuccess || r == ncclInProgress) return;
  throw_if_failed(s);  // an abort's fallout: the timeout is the error to report
  throw Error(fmt::format("NCCL {} on {}{}: {} ({})", op, group_of(s), peer_of(peer), ncclGetErrorString(r),
                          ncclGetLastError(s.comm)));
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::I32: return ncclInt32;
    case DType::U16: return ncclUint8;  // moved as bytes, never reduced
  }
  return ncclUint8;
}

// Elements in NCCL's units (U16 goes as twice as many bytes).
size_t nccl_count(const Tensor& t) { return t.dtype() == DType::U16 ? t.nbytes() : static_cast<size_t>(t.numel()); }

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Avg: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
  }
  return ncclSum;
}

void* device_ptr(const Tensor& t, const NcclState& s, const char* op) {
  TESSERA_CHECK(t.device() == s.context->device(),
                "NCCL {} on {}: a tensor on {} (NCCL moves tensors on {}; host tensors go through MPI)", op,
                group_of(s), device_name(t.device()), device_name(s.context->device()));
  return t.device_data<void>();
}

void check_reducible(const Tensor& t, const NcclState& s, const char* op) {
  TESSERA_CHECK(t.dtype() != DType::U16, "NCCL {} on {}: U16 tensors cannot be reduced", op, group_of(s));
}

// One operation: refused on a failed group, watched, ordered after the compute stream's work so
// far; returns the event that marks its end on the NCCL stream.
std::shared_ptr<CudaEvent> run_op(NcclState& s, const char* op, int peer, const std::function<ncclResult_t()>& call) {
  throw_if_failed(s);
  std::string what = fmt::format("timeout after {} s in {} on {}", s.timeout_s, op, group_of(s));
  if (s.step >= 0) what += fmt::format(" at step {}", s.step);
  what += fmt::format(": {} did not finish on {}{}; the NCCL watchdog aborted the communicator", op,
                      device_name(s.context->device()), peer >= 0 ? fmt::format(" (peer {})", peer) : "");
  const uint64_t id = s.watchdog->watch(s.comm, what, s.timeout_s);
  CudaEvent ready;
  ready.record(s.context->stream());
  ready.make_wait(s.stream);
  const ncclResult_t r = call();
  if (r != ncclSuccess && r != ncclInProgress) s.watchdog->forget(id);
  check(r, s, op, peer);
  auto end = std::make_shared<CudaEvent>();
  end->record(s.stream);
  s.watchdog->issued(id, end);
  return end;
}

// The compute stream continues after `end` (no host wait).
void join_compute(NcclState& s, const CudaEvent& end) { end.make_wait(s.context->stream()); }

class NcclRequest final : public CommRequest {
 public:
  NcclRequest(std::shared_ptr<NcclState> state, std::shared_ptr<std::shared_ptr<CudaEvent>> end, Tensor keep)
      : state_(std::move(state)), end_(std::move(end)), keep_(std::move(keep)) {}
  // Orders the compute stream after the operation; the tensor is safe to use from there.
  void wait() override {
    TESSERA_CHECK(*end_ != nullptr, "NCCL request on {} waited before end_p2p_group issued it", group_of(*state_));
    throw_if_failed(*state_);
    join_compute(*state_, **end_);
  }
  bool test() override { return *end_ != nullptr && (*end_)->done(); }

 private:
  std::shared_ptr<NcclState> state_;
  std::shared_ptr<std::shared_ptr<CudaEvent>> end_;
  Tensor keep_;  // the caching allocator must not hand the bytes out while NCCL uses them
};

std::shared_ptr<std::shared_ptr<CudaEvent>> holder(std::shared_ptr<CudaEvent> e) {
  return std::make_shared<std::shared_ptr<CudaEvent>>(std::move(e));
}

}  // namespace

NcclCommunicator::NcclCommunicator(MpiCommunicator& host, std::shared_ptr<CudaContext> context,
                                   const std::string& name, double timeout_s)
    : state_(std::make_shared<NcclState>()) {
  NcclState& s = *state_;
  s.name = name;
  s.rank = host.rank();
  s.size = host.size();
  s.world_rank = host.world_rank();
  s.timeout_s = timeout_s;
  s.context = std::move(context);
  s.watchdog = std::make_shared<detail::NcclWatchdog>(s.world_rank);
  ncclUniqueId id{};
  if (s.rank == 0) check(ncclGetUniqueId(&id), s, "get unique id", -1);
  TESSERA_MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, host.mpi_comm()), "MPI_Bcast of the NCCL id on {}",
                    name);
  s.context->make_current();
  TESSERA_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  check(ncclCommInitRank(&s.comm, s.size, id, s.rank), s, "communicator creation", -1);
}

NcclCommunicator::NcclCommunicator(std::shared_ptr<detail::NcclState> state) : state_(std::move(state)) {}

NcclCommunicator::~NcclCommunicator() = default;

int NcclCommunicator::nccl_version() {
  int version = 0;
  ncclGetVersion(&version);
  return version;
}

int NcclCommunicator::rank() const { return state_->rank; }
int NcclCommunicator::size() const { return state_->size; }
const std::string& NcclCommunicator::name() const { return state_->name; }
void NcclCommunicator::set_step(int64_t step) { state_->step = step; }
CommTraffic NcclCommunicator::traffic() const { return state_->traffic; }

std::unique_ptr<CommRequest> NcclCommunicator::all_reduce_async(Tensor& t, ReduceOp op) {
  NcclState& s = *state_;
  check_reducible(t, s, "all_reduce");
  void* p = device_ptr(t, s, "all_reduce");
  auto end = run_op(s, "all_reduce", -1, [&] {
    return ncclAllReduce(p, p, nccl_count(t), nccl_type(t.dtype()), nccl_op(op), s.comm, s.stream);
  });
  s.traffic.all_reduce += static_cast<double>(t.nbytes());
  return std::make_unique<NcclRequest>(state_, holder(end), t);
}

void NcclCommunicator::all_reduce(Tensor& t, ReduceOp op) { all_reduce_async(t, op)->wait(); }

std::unique_ptr<CommRequest> NcclCommunicator::all_gather_async(const Tensor& in, Tensor& out) {
  NcclState& s = *state_;
  TESSERA_CHECK(out.numel() == in.numel() * s.size && out.dtype() == in.dtype(),
                "NCCL all_gather on {}: {} {} into {} {}", group_of(s), dtype_name(in.dtype()),
                shape_string(in.shape()), dtype_name(out.dtype()), shape_string(out.shape()));
  const void* src = device_ptr(in, s, "all_gather");
  void* dst = device_ptr(out, s, "all_gather");
  auto end = run_op(s, "all_gather", -1, [&] {
    return ncclAllGather(src, dst, nccl_count(in), nccl_type(in.dtype()), s.comm, s.stream);
  });
  s.traffic.all_gather += static_cast<double>(out.nbytes());
  return std::make_unique<NcclRequest>(state_, holder(end), out);
}

void NcclCommunicator::all_gather(const Tensor& in, Tensor& out) { all_gather_async(in, out)->wait(); }

std::unique_ptr<CommRequest> NcclCommunicator::reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) {
  NcclState& s = *state_;
  TESSERA_CHECK(in.numel() == out.numel() * s.size && out.dtype() == in.dtype(),
                "NCCL reduce_scatter on {}: {} {} into {} {}", group_of(s), dtype_name(in.dtype()),
                shape_string(in.shape()), dtype_name(out.dtype()), shape_string(out.shape()));
  check_reducible(in, s, "reduce_scatter");
  const void* src = device_ptr(in, s, "reduce_scatter");
  void* dst = device_ptr(out, s, "reduce_scatter");
  auto end = run_op(s, "reduce_scatter", -1, [&] {
    return ncclReduceScatter(src, dst, nccl_count(out), nccl_type(in.dtype()), nccl_op(op), s.comm, s.stream);
  });
  s.traffic.reduce_scatter += static_cast<double>(in.nbytes());
  return std::make_unique<NcclRequest>(state_, holder(end), in);
}

void NcclCommunicator::reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) {
  reduce_scatter_async(in, out, op)->wait();
}

void NcclCommunicator::broadcast(Tensor& t, int root) {
  NcclState& s = *state_;
  TESSERA_CHECK(root >= 0 && root < s.size, "NCCL broadcast on {}: root {} out of range", group_of(s), root);
  void* p = device_ptr(t, s, "broadcast");
  join_compute(s, *run_op(s, "broadcast", root, [&] {
    return ncclBroadcast(p, p, nccl_count(t), nccl_type(t.dtype()), root, s.comm, s.stream);
  }));
}

namespace {

// A send or receive: issued now, or queued for end_p2p_group inside a group.
std::unique_ptr<CommRequest> p2p(const std::shared_ptr<NcclState>& state, const Tensor& t, int peer, bool send) {
  NcclState& s = *state;
  const char* op = send ? "send" : "recv";
  TESSERA_CHECK(peer >= 0 && peer < s.size && peer != s.rank, "NCCL {} on {}: peer {} out of range", op, group_of(s),
                peer);
  void* p = device_ptr(t, s, op);
  const size_t count = nccl_count(t);
  const ncclDataType_t type = nccl_type(t.dtype());
  auto call = [&s, p, count, type, peer, send] {
    return send ? ncclSend(p, count, type, peer, s.comm, s.stream) : ncclRecv(p, count, type, peer, s.comm, s.stream);
  };
  if (!s.in_group) return std::make_unique<NcclRequest>(state, holder(run_op(s, op, peer, call)), t);
  auto end = holder(nullptr);
  s.group_calls.push_back(call);
  s.group_ends.push_back(end);
  return std::make_unique<NcclRequest>(state, end, t);
}

}  // namespace

std::unique_ptr<CommRequest> NcclCommunicator::send(const Tensor& t, int peer, int) {
  return p2p(state_, t, peer, true);
}

std::unique_ptr<CommRequest> NcclCommunicator::recv(Tensor& t, int peer, int) { return p2p(state_, t, peer, false); }

void NcclCommunicator::begin_p2p_group() {
  TESSERA_CHECK(!state_->in_group, "NCCL p2p groups on {} do not nest", group_of(*state_));
  state_->in_group = true;
}

// The group's calls go to NCCL between ncclGroupStart/End as one operation with one end event.
void NcclCommunicator::end_p2p_group() {
  NcclState& s = *state_;
  TESSERA_CHECK(s.in_group, "end_p2p_group on {} without begin_p2p_group", group_of(s));
  s.in_group = false;
  std::vector<std::function<ncclResult_t()>> calls = std::move(s.group_calls);
  std::vector<std::shared_ptr<std::shared_ptr<CudaEvent>>> ends = std::move(s.group_ends);
  s.group_calls.clear();
  s.group_ends.clear();
  if (calls.empty()) return;
  auto end = run_op(s, "p2p group (send/recv of one schedule step)", -1, [&] {
    ncclResult_t r = ncclGroupStart();
    if (r != ncclSuccess) return r;
    for (const auto& c : calls) {
      if (r == ncclSuccess) r = c();  // after a failure, only close the group
    }
    const ncclResult_t end = ncclGroupEnd();
    return r != ncclSuccess ? r : end;
  });
  for (auto& e : ends) *e = end;
}

void NcclCommunicator::barrier() {
  NcclState& s = *state_;
  Tensor one = Tensor::zeros({1}, DType::F32, s.context->device());
  all_reduce(one, ReduceOp::Sum);
  CudaEvent done;
  done.record(s.context->stream());
  // A host wait that the watchdog bounds: an abort makes the event complete.
  while (!done.done()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  throw_if_failed(s);
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key, const std::string& name) {
  NcclState& s = *state_;
  throw_if_failed(s);
  ncclComm_t child = nullptr;
  check(ncclCommSplit(s.comm, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &child, nullptr), s, "split", -1);
  if (color < 0) return nullptr;
  auto state = std::make_shared<NcclState>();
  state->watchdog = s.watchdog;
  state->comm = child;
  state->name = name;
  check(ncclCommUserRank(child, &state->rank), *state, "split", -1);
  check(ncclCommCount(child, &state->size), *state, "split", -1);
  state->world_rank = s.world_rank;
  state->timeout_s = s.timeout_s;
  state->step = s.step;
  state->context = s.context;
  s.context->make_current();
  TESSERA_CUDA_CHECK(cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking));
  return std::unique_ptr<Communicator>(new NcclCommunicator(std::move(state)));
}

}  // namespace tessera
