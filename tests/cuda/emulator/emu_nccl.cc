// An emulated NCCL for the emulated build: a TEST DOUBLE FOR THE TRANSPORT ONLY. It implements
// the NCCL calls runtime/comm/nccl_communicator.cc makes on host memory (the emulation's "device"
// memory) with MPI underneath, so NcclCommunicator's own logic — id exchange, splits, stream and
// event ordering, p2p groups, the watchdog and its abort — runs in CI under mpirun without a GPU.
// It says nothing about NCCL itself: the real NCCL code path is what the device check runs.
//
// Each call completes before it returns (as every emulated stream operation does), polling MPI
// so that ncclCommAbort from the watchdog thread can end a call whose peer never comes; the
// watchdog thread itself makes no MPI call. ncclCommInitRank must be called by every rank of
// MPI_COMM_WORLD (the id picks the group by MPI_Comm_split); later groups come from
// ncclCommSplit. Reductions: float32 and int32, and bf16 sums (fp32 per hop, rounded back);
// other bf16/fp16 reductions are refused.
#include <mpi.h>
#include <nccl.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "runtime/bf16.h"

struct ncclComm {
  MPI_Comm mpi = MPI_COMM_NULL;
  int rank = 0, size = 1;
  std::atomic<bool> aborted{false};
  std::atomic<int> pending{0};  // calls in progress; an aborted comm is freed once they end
};

namespace {

struct QueuedP2P {
  bool send;
  void* buf;
  size_t bytes;
  int peer;
  ncclComm_t comm;
};
int g_group_depth = 0;
std::vector<QueuedP2P> g_group;

size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    default: return 8;
  }
}

// bfloat16 sums as NCCL does them, in fp32 and rounded back at each hop (the same rule as the
// MPI communicator's, runtime/comm/mpi_communicator.cc): gradients reduced in bf16.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = tessera::f32_to_bf16(tessera::bf16_to_f32(a[i]) + tessera::bf16_to_f32(b[i]));
}

bool mpi_reduce_args(ncclDataType_t t, ncclRedOp_t op, MPI_Datatype* type, MPI_Op* mop) {
  if (t == ncclBfloat16) {
    if (op != ncclSum) return false;
    static const MPI_Op bf16_sum_op = [] {
      MPI_Op o;
      MPI_Op_create(&bf16_sum, /*commute=*/1, &o);
      return o;
    }();
    *type = MPI_UINT16_T;
    *mop = bf16_sum_op;
    return true;
  }
  if (t == ncclFloat32) *type = MPI_FLOAT;
  else if (t == ncclInt32) *type = MPI_INT;
  else return false;
  if (op == ncclSum || op == ncclAvg) *mop = MPI_SUM;
  else if (op == ncclMax) *mop = MPI_MAX;
  else return false;
  return true;
}

// Polls the requests until they complete or the communicator is aborted.
ncclResult_t finish(ncclComm_t comm, std::vector<MPI_Request>& requests) {
  while (true) {
    int done = 0;
    MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
    if (done) return ncclSuccess;
    if (comm->aborted.load()) return ncclRemoteError;  // the requests are abandoned with the job
  }
}

void average(void* buf, size_t count, ncclDataType_t t, ncclRedOp_t op, int size) {
  if (op != ncclAvg) return;
  if (t == ncclFloat32) {
    for (size_t i = 0; i < count; ++i) static_cast<float*>(buf)[i] /= static_cast<float>(size);
  } else {
    for (size_t i = 0; i < count; ++i) static_cast<int32_t*>(buf)[i] /= size;
  }
}

struct Busy {  // counts a call in progress on comm
  ncclComm_t comm;
  explicit Busy(ncclComm_t c) : comm(c) { ++comm->pending; }
  ~Busy() { --comm->pending; }
};

}  // namespace

extern "C" {

ncclResult_t ncclGetVersion(int* version) {
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}
const char* ncclGetErrorString(ncclResult_t r) {
  return r == ncclRemoteError ? "remote process exited or there was a network error (emulated NCCL: aborted)"
                              : "emulated NCCL error";
}
const char* ncclGetLastError(ncclComm_t) { return "emulated NCCL over MPI"; }

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  std::memset(id, 0, sizeof(*id));
  static int counter = 0;
  const int color = ++counter;
  std::memcpy(id->internal, &color, sizeof(color));
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  int color = 0;
  std::memcpy(&color, id.internal, sizeof(color));
  auto* c = new ncclComm;
  if (MPI_Comm_split(MPI_COMM_WORLD, color, rank, &c->mpi) != MPI_SUCCESS) return ncclSystemError;
  MPI_Comm_rank(c->mpi, &c->rank);
  MPI_Comm_size(c->mpi, &c->size);
  if (c->size != nranks || c->rank != rank) return ncclInvalidUsage;
  *comm = c;
  return ncclSuccess;
}

ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm, ncclConfig_t*) {
  MPI_Comm out = MPI_COMM_NULL;
  if (MPI_Comm_split(comm->mpi, color == NCCL_SPLIT_NOCOLOR ? MPI_UNDEFINED : color, key, &out) != MPI_SUCCESS) {
    return ncclSystemError;
  }
  *newcomm = nullptr;
  if (out == MPI_COMM_NULL) return ncclSuccess;
  auto* c = new ncclComm;
  c->mpi = out;
  MPI_Comm_rank(out, &c->rank);
  MPI_Comm_size(out, &c->size);
  *newcomm = c;
  return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  *count = comm->size;
  return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  *rank = comm->rank;
  return ncclSuccess;
}
ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  MPI_Comm_free(&comm->mpi);
  delete comm;
  return ncclSuccess;
}
// From the watchdog thread: no MPI here. The call in progress sees the flag and returns; the
// communicator (and its MPI requests) are left to the end of the job, as after a real abort.
ncclResult_t ncclCommAbort(ncclComm_t comm) {
  comm->aborted.store(true);
  return ncclSuccess;
}
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* error) {
  *error = comm->aborted.load() ? ncclRemoteError : ncclSuccess;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t) {
  const Busy busy(comm);
  MPI_Datatype mtype;
  MPI_Op mop;
  if (!mpi_reduce_args(type, op, &mtype, &mop)) return ncclInvalidArgument;
  std::vector<MPI_Request> req(1);
  MPI_Iallreduce(send == recv ? MPI_IN_PLACE : send, recv, static_cast<int>(count), mtype, mop, comm->mpi, &req[0]);
  const ncclResult_t r = finish(comm, req);
  if (r == ncclSuccess) average(recv, count, type, op, comm->size);
  return r;
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t count, ncclDataType_t type, ncclComm_t comm,
                           cudaStream_t) {
  const Busy busy(comm);
  const int bytes = static_cast<int>(count * type_size(type));
  std::vector<MPI_Request> req(1);
  MPI_Iallgather(send, bytes, MPI_BYTE, recv, bytes, MPI_BYTE, comm->mpi, &req[0]);
  return finish(comm, req);
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                               ncclComm_t comm, cudaStream_t) {
  const Busy busy(comm);
  MPI_Datatype mtype;
  MPI_Op mop;
  if (!mpi_reduce_args(type, op, &mtype, &mop)) return ncclInvalidArgument;
  std::vector<MPI_Request> req(1);
  MPI_Ireduce_scatter_block(send, recv, static_cast<int>(count), mtype, mop, comm->mpi, &req[0]);
  const ncclResult_t r = finish(comm, req);
  if (r == ncclSuccess) average(recv, count, type, op, comm->size);
  return r;
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root,
                           ncclComm_t comm, cudaStream_t) {
  const Busy busy(comm);
  const size_t bytes = count * type_size(type);
  if (comm->rank == root && send != recv) std::memmove(recv, send, bytes);
  std::vector<MPI_Request> req(1);
  MPI_Ibcast(recv, static_cast<int>(bytes), MPI_BYTE, root, comm->mpi, &req[0]);
  return finish(comm, req);
}

ncclResult_t ncclGroupStart() {
  ++g_group_depth;
  return ncclSuccess;
}

// Every queued send and receive is posted before any is waited for: what makes a group safe.
ncclResult_t ncclGroupEnd() {
  if (g_group_depth == 0) return ncclInvalidUsage;
  if (--g_group_depth > 0) return ncclSuccess;
  std::vector<QueuedP2P> ops;
  ops.swap(g_group);
  if (ops.empty()) return ncclSuccess;
  ncclComm_t comm = ops.front().comm;
  const Busy busy(comm);
  std::vector<MPI_Request> req(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    const QueuedP2P& o = ops[i];
    if (o.send) {
      // Synchronous mode, as NCCL's: a send completes only once its receive is posted (MPI_Isend
      // would buffer small messages and hide a receive issued ahead of the send it waits for).
      MPI_Issend(o.buf, static_cast<int>(o.bytes), MPI_BYTE, o.peer, 0, o.comm->mpi, &req[i]);
    } else {
      MPI_Irecv(o.buf, static_cast<int>(o.bytes), MPI_BYTE, o.peer, 0, o.comm->mpi, &req[i]);
    }
  }
  return finish(comm, req);
}

static ncclResult_t p2p(bool send, const void* buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm) {
  ncclGroupStart();
  g_group.push_back({send, const_cast<void*>(buf), count * type_size(type), peer, comm});
  return ncclGroupEnd();
}

ncclResult_t ncclSend(const void* buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm, cudaStream_t) {
  return p2p(true, buf, count, type, peer, comm);
}
ncclResult_t ncclRecv(void* buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm, cudaStream_t) {
  return p2p(false, buf, count, type, peer, comm);
}

}  // extern "C"
