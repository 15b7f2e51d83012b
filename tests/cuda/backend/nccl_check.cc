// The NCCL communicator under mpirun, in the manner of nccl-tests: every operation on device
// tensors whose contents come from per-rank seeds, checked against the expected buffer computed
// on the host. Modes:
//   ops      every collective (Sum/Avg/Max, F32/I32, BF16 moved), grouped and plain send/recv,
//            splits into tp-like and dp-like groups, the refusal of a host tensor; exits 0 when
//            every check holds, else 1 listing the failures.
//   timeout  rank 1 skips an all_reduce: rank 0's watchdog must abort it after the timeout and
//            the next call on the group must throw the one-line timeout message, which is
//            printed as `tessera: error on rank 0: ...` before the job is ended.
// Built against the emulated NCCL (CI: tessera_nccl_emulated_check) and the real one (the device
// check: tessera_nccl_check). Every rank uses its node-local GPU, or GPU 0 when there is one.
#include <chrono>
#include <cmath>
#include <thread>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/nccl_communicator.h"
#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

int g_failures = 0;
void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  }
}

// rank r's element i: distinct per rank and index, exact in fp32.
float value(int r, int64_t i) { return static_cast<float>(r * 1000 + i) * 0.5f; }

Tensor rank_tensor(int r, int64_t n, Device d) {
  Tensor t = Tensor::empty({n});
  for (int64_t i = 0; i < n; ++i) t.f32()[i] = value(r, i);
  return to_device(t, d);
}

std::vector<float> host(const Tensor& t) {
  const Tensor h = to_device(t, Device::cpu());
  return {h.f32(), h.f32() + h.numel()};
}

void check_collectives(Communicator& c, Device d) {
  const int R = c.size(), me = c.rank();
  const int64_t n = 6;
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max}) {
    Tensor t = rank_tensor(me, n, d);
    c.all_reduce(t, op);
    const std::vector<float> got = host(t);
    for (int64_t i = 0; i < n; ++i) {
      float want = op == ReduceOp::Max ? value(R - 1, i) : 0.0f;
      if (op != ReduceOp::Max) {
        for (int r = 0; r < R; ++r) want += value(r, i);
        if (op == ReduceOp::Avg) want /= static_cast<float>(R);
      }
      expect(got[i] == want, c.name() + " all_reduce element " + std::to_string(i));
    }
  }
  Tensor gathered = Tensor::empty({n * R}, DType::F32, d);
  c.all_gather(rank_tensor(me, n, d), gathered);
  const std::vector<float> g = host(gathered);
  for (int r = 0; r < R; ++r) expect(g[r * n + 1] == value(r, 1), c.name() + " all_gather block " + std::to_string(r));
  Tensor block = Tensor::empty({n}, DType::F32, d);
  c.reduce_scatter(rank_tensor(me, n * R, d), block, ReduceOp::Sum);
  float want = 0;
  for (int r = 0; r < R; ++r) want += value(r, me * n + 2);
  expect(host(block)[2] == want, c.name() + " reduce_scatter");
  Tensor b = rank_tensor(me, n, d);
  c.broadcast(b, R - 1);
  expect(host(b)[3] == value(R - 1, 3), c.name() + " broadcast");
}

// Both directions at once, receives posted first: deadlocks without the group.
void check_p2p(Communicator& c, Device d) {
  if (c.size() < 2) return;
  const int me = c.rank(), peer = (me + 1) % c.size(), from = (me + c.size() - 1) % c.size();
  Tensor in = Tensor::empty({5}, DType::F32, d);
  c.begin_p2p_group();
  auto r = c.recv(in, from, 0);
  auto s = c.send(rank_tensor(me, 5, d), peer, 0);
  c.end_p2p_group();
  r->wait();
  s->wait();
  expect(host(in)[4] == value(from, 4), c.name() + " grouped send/recv");
}

int run_ops(MpiCommunicator& world, NcclCommunicator& nccl, Device d) {
  std::printf("NCCL version code %d, %d ranks\n", NcclCommunicator::nccl_version(), nccl.size());
  check_collectives(nccl, d);
  check_p2p(nccl, d);
  // tp-like (adjacent ranks) and dp-like (strided) groups of 2 when there are 4 ranks; of 1 or 2 otherwise.
  const int me = nccl.rank();
  auto tp = nccl.split(me / 2, me, "tp");
  auto dp = nccl.split(me % 2, me, "dp");
  check_collectives(*tp, d);
  check_p2p(*tp, d);
  check_collectives(*dp, d);
  auto none = nccl.split(me == 0 ? -1 : 0, me, "rest");
  expect((me == 0) == (none == nullptr), "a negative color leaves the rank out");
  Tensor on_host = Tensor::zeros({4});
  try {
    nccl.all_reduce(on_host, ReduceOp::Sum);
    expect(false, "a host tensor was accepted");
  } catch (const Error& e) {
    expect(std::string(e.what()).find("NCCL all_reduce on group 'world'") != std::string::npos &&
               std::string(e.what()).find("a tensor on cpu") != std::string::npos,
           std::string("host tensor message: ") + e.what());
  }
  nccl.barrier();
  int failures = g_failures, total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, world.mpi_comm());
  if (world.rank() == 0) std::printf(total == 0 ? "PASS: every NCCL check holds\n" : "FAIL: %d checks failed\n", total);
  return total == 0 ? 0 : 1;
}

int run_timeout(MpiCommunicator& world, NcclCommunicator& nccl, Device d) {
  nccl.set_step(7);
  Tensor t = rank_tensor(nccl.rank(), 4, d);
  if (world.rank() == 1) {
    // Never joins, and makes no MPI call: rank 0 must end the job.
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 0;
  }
  try {
    nccl.all_reduce(t, ReduceOp::Sum);
    nccl.barrier();  // the host waits here until the watchdog aborts
    std::fprintf(stderr, "FAILED: the missing peer was not detected\n");
  } catch (const std::exception& e) {
    std::cerr << "tessera: error on rank 0: " << e.what() << std::endl;
  }
  abort_job(1);
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  using namespace tessera;
  MpiEnvironment env(&argc, &argv);
  const std::string mode = argc > 1 ? argv[1] : "ops";
  const double timeout_s = mode == "timeout" ? 1.0 : 60.0;
  try {
    auto world = MpiCommunicator::world(timeout_s);
    const int devices = visible_cuda_devices();
    if (devices == 0) {
      std::fprintf(stderr, "no CUDA device visible\n");
      return 1;
    }
    auto context = start_cuda_device(world->rank() % devices, false);
    NcclCommunicator nccl(*world, context, "world", timeout_s);
    return mode == "timeout" ? run_timeout(*world, nccl, context->device())
                             : run_ops(*world, nccl, context->device());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tessera: error on rank %d: %s\n", env.world_rank(), e.what());
    abort_job(1);
  }
}
