// Every MpiCommunicator operation against results computed from per-rank seeds: several
// sizes (0, 1, odd, not divisible by the world size), every reduce op and dtype, async
// requests, aliasing, split, send/recv rings and the argument errors.
#include <algorithm>
#include <vector>

#include "runtime/bf16.h"
#include "runtime/comm/mpi_communicator.h"
#include "tests/mpi/mpi_test_util.h"

namespace tessera::mpitest {
namespace {

const int64_t kSizes[] = {0, 1, 7, 1000, (1 << 16) + 3};
const ReduceOp kOps[] = {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max};
const DType kAllDtypes[] = {DType::F32, DType::I32, DType::BF16, DType::F16, DType::U16};

const char* op_name(ReduceOp op) { return op == ReduceOp::Sum ? "sum" : op == ReduceOp::Avg ? "avg" : "max"; }

// The reduction of element `index` over ranks 0..size-1, as the communicator computes it.
float expected_f32(uint64_t seed, int size, int64_t index, ReduceOp op) {
  float acc = f32_value(seed, 0, index);
  for (int r = 1; r < size; ++r) {
    const float v = f32_value(seed, r, index);
    acc = op == ReduceOp::Max ? std::max(acc, v) : acc + v;
  }
  return op == ReduceOp::Avg ? acc / static_cast<float>(size) : acc;
}
int32_t expected_i32(uint64_t seed, int size, int64_t index, ReduceOp op) {
  int32_t acc = i32_value(seed, 0, index);
  for (int r = 1; r < size; ++r) {
    const int32_t v = i32_value(seed, r, index);
    acc = op == ReduceOp::Max ? std::max(acc, v) : acc + v;
  }
  return op == ReduceOp::Avg ? acc / size : acc;
}

// Checks t[i] == reduction of element (offset + i); reports only the first mismatch.
void check_reduced(Harness& h, const Tensor& t, uint64_t seed, int size, ReduceOp op, int64_t offset,
                   const std::string& what) {
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype() == DType::F32) {
      const float want = expected_f32(seed, size, offset + i, op);
      if (!h.check(t.f32()[i] == want, "{}: element {} is {}, expected {}", what, i, t.f32()[i], want)) return;
    } else {
      const int32_t want = expected_i32(seed, size, offset + i, op);
      if (!h.check(t.i32()[i] == want, "{}: element {} is {}, expected {}", what, i, t.i32()[i], want)) return;
    }
  }
}

// Checks t holds rank `rank`'s values from index offset.
void check_values(Harness& h, const Tensor& t, uint64_t seed, int rank, int64_t offset, const std::string& what) {
  Tensor want = Tensor::empty({t.numel()}, t.dtype());
  fill(want, seed, rank, offset);
  if (t.nbytes() == 0) return;
  const auto* got = t.data<unsigned char>();
  const auto* ref = want.data<unsigned char>();
  const size_t elem = dtype_size(t.dtype());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (!h.check(std::equal(got + i * elem, got + (i + 1) * elem, ref + i * elem), "{}: element {} differs", what, i)) {
      return;
    }
  }
}

void test_all_reduce(Harness& h, MpiCommunicator& c) {
  uint64_t seed = 100;
  for (DType dtype : {DType::F32, DType::I32}) {
    for (ReduceOp op : kOps) {
      for (int64_t n : kSizes) {
        ++seed;
        Tensor t = Tensor::empty({n}, dtype);
        fill(t, seed, c.rank());
        c.all_reduce(t, op);
        check_reduced(h, t, seed, c.size(), op, 0, fmt::format("{} {} n={}", dtype_name(dtype), op_name(op), n));
      }
    }
  }
  // A view into the middle of a larger tensor: rows 1..3 of a 5 x 3 matrix.
  Tensor m = Tensor::zeros({5, 3});
  Tensor rows = m.narrow(1, 3);
  fill(rows, 77, c.rank());
  c.all_reduce(rows, ReduceOp::Sum);
  check_reduced(h, rows, 77, c.size(), ReduceOp::Sum, 0, "narrowed view");
  h.check(m.f32()[0] == 0.0f && m.f32()[14] == 0.0f, "all_reduce on a view wrote outside it");
}

void test_all_reduce_async(Harness& h, MpiCommunicator& c) {
  // Three requests in flight at once, progressed by test() and finished in reverse order.
  std::vector<Tensor> tensors;
  std::vector<std::unique_ptr<CommRequest>> requests;
  const int64_t sizes[] = {1000, 5, (1 << 16) + 3};
  const ReduceOp ops[] = {ReduceOp::Avg, ReduceOp::Max, ReduceOp::Sum};
  for (int k = 0; k < 3; ++k) {
    tensors.push_back(Tensor::empty({sizes[k]}));
    fill(tensors.back(), 300 + k, c.rank());
    requests.push_back(c.all_reduce_async(tensors.back(), ops[k]));
  }
  for (int spin = 0; spin < 100; ++spin) {
    for (auto& r : requests) r->test();
  }
  for (int k = 2; k >= 0; --k) {
    requests[k]->wait();
    h.check(requests[k]->test(), "test() after wait() must be true");
    check_reduced(h, tensors[k], 300 + k, c.size(), ops[k], 0, fmt::format("async #{}", k));
  }
  // A request dropped unfinished: the communicator keeps its buffer and stays usable.
  {
    Tensor dropped = Tensor::empty({4096});
    fill(dropped, 310, c.rank());
    auto request = c.all_reduce_async(dropped, ReduceOp::Sum);
  }
  Tensor after = Tensor::empty({10});
  fill(after, 311, c.rank());
  c.all_reduce(after, ReduceOp::Sum);
  check_reduced(h, after, 311, c.size(), ReduceOp::Sum, 0, "after a dropped request");
}

void test_all_gather(Harness& h, MpiCommunicator& c) {
  uint64_t seed = 400;
  for (DType dtype : kAllDtypes) {
    for (int64_t n : kSizes) {
      ++seed;
      Tensor in = Tensor::empty({n}, dtype);
      fill(in, seed, c.rank());
      Tensor out = Tensor::empty({c.size() * n}, dtype);
      c.all_gather(in, out);
      for (int r = 0; r < c.size(); ++r) {
        check_values(h, out.narrow(r * n, n), seed, r, 0, fmt::format("{} n={} block {}", dtype_name(dtype), n, r));
      }
      // In place: `in` is this rank's block of `out`.
      Tensor full = Tensor::zeros({c.size() * n}, dtype);
      Tensor mine = full.narrow(c.rank() * n, n);
      fill(mine, seed, c.rank());
      c.all_gather(mine, full);
      for (int r = 0; r < c.size(); ++r) {
        check_values(h, full.narrow(r * n, n), seed, r, 0, fmt::format("in-place {} n={} block {}", dtype_name(dtype), n, r));
      }
    }
  }
}

void test_reduce_scatter(Harness& h, MpiCommunicator& c) {
  uint64_t seed = 500;
  for (DType dtype : {DType::F32, DType::I32}) {
    for (ReduceOp op : kOps) {
      for (int64_t n : kSizes) {
        ++seed;
        Tensor in = Tensor::empty({c.size() * n}, dtype);
        fill(in, seed, c.rank());
        Tensor out = Tensor::empty({n}, dtype);
        c.reduce_scatter(in, out, op);
        const std::string what = fmt::format("{} {} n={}", dtype_name(dtype), op_name(op), n);
        check_reduced(h, out, seed, c.size(), op, c.rank() * n, what);
        // Aliased: the output is this rank's block of the input (the ZeRO layout).
        Tensor buffer = Tensor::empty({c.size() * n}, dtype);
        fill(buffer, seed, c.rank());
        Tensor block = buffer.narrow(c.rank() * n, n);
        c.reduce_scatter(buffer, block, op);
        check_reduced(h, block, seed, c.size(), op, c.rank() * n, "aliased " + what);
      }
    }
  }
}

void test_broadcast(Harness& h, MpiCommunicator& c) {
  uint64_t seed = 600;
  for (int root = 0; root < c.size(); ++root) {
    for (DType dtype : kAllDtypes) {
      for (int64_t n : kSizes) {
        ++seed;
        Tensor t = Tensor::empty({n}, dtype);
        fill(t, seed, c.rank());
        c.broadcast(t, root);
        check_values(h, t, seed, root, 0, fmt::format("root {} {} n={}", root, dtype_name(dtype), n));
      }
    }
  }
}

void test_send_recv(Harness& h, MpiCommunicator& c) {
  const int next = (c.rank() + 1) % c.size();
  const int prev = (c.rank() + c.size() - 1) % c.size();
  uint64_t seed = 700;
  for (DType dtype : kAllDtypes) {
    for (int64_t n : kSizes) {
      ++seed;
      // Two rings at once, in opposite directions, told apart by tag.
      Tensor out_fwd = Tensor::empty({n}, dtype), out_bwd = Tensor::empty({n}, dtype);
      fill(out_fwd, seed, c.rank());
      fill(out_bwd, seed + 1000, c.rank());
      Tensor in_fwd = Tensor::empty({n}, dtype), in_bwd = Tensor::empty({n}, dtype);
      auto r1 = c.recv(in_fwd, prev, 1);
      auto r2 = c.recv(in_bwd, next, 2);
      auto s1 = c.send(out_fwd, next, 1);
      auto s2 = c.send(out_bwd, prev, 2);
      s2->wait();
      r2->wait();
      r1->wait();
      s1->wait();
      const std::string what = fmt::format("{} n={}", dtype_name(dtype), n);
      check_values(h, in_fwd, seed, prev, 0, "ring forward " + what);
      check_values(h, in_bwd, seed + 1000, next, 0, "ring backward " + what);
    }
  }
}

void test_barrier_and_split(Harness& h, MpiCommunicator& c) {
  for (int i = 0; i < 3; ++i) c.barrier();
  // Even and odd ranks, each group ordered by descending world rank.
  auto sub = c.split(c.rank() % 2, -c.rank(), "parity");
  const int members = (c.size() + 1 - c.rank() % 2) / 2;
  h.check(sub != nullptr, "split returned no group");
  if (!sub) return;
  h.check(sub->name() == "parity", "name is '{}'", sub->name());
  h.check(sub->size() == members, "size {} expected {}", sub->size(), members);
  const int higher = (c.size() - 1 - c.rank()) / 2;  // same-parity ranks above this one
  h.check(sub->rank() == higher, "rank {} expected {}", sub->rank(), higher);
  auto* mpi_sub = dynamic_cast<MpiCommunicator*>(sub.get());
  h.check(mpi_sub != nullptr && mpi_sub->world_rank() == c.world_rank(), "world rank of the split group");
  Tensor t = Tensor::empty({2}, DType::I32);
  t.i32()[0] = c.rank();
  t.i32()[1] = 1;
  sub->all_reduce(t, ReduceOp::Sum);
  int want = 0;
  for (int r = c.rank() % 2; r < c.size(); r += 2) want += r;
  h.check(t.i32()[0] == want && t.i32()[1] == members, "group sum {} count {}", t.i32()[0], t.i32()[1]);
  // A split of a split, and ranks left out with a negative color.
  auto nested = sub->split(0, sub->rank(), "nested");
  h.check(nested && nested->size() == sub->size(), "nested split");
  auto partial = c.split(c.rank() == 0 ? -1 : 0, c.rank(), "without rank 0");
  h.check((c.rank() == 0) == (partial == nullptr), "negative color");
  if (partial) {
    h.check(partial->size() == c.size() - 1 && partial->rank() == c.rank() - 1, "partial group rank");
    partial->barrier();
  }
}

void test_errors(Harness& h, MpiCommunicator& c) {
  Tensor bf16 = Tensor::zeros({4}, DType::BF16);
  h.expect_error("(and BF16 for sum and avg), got BF16", [&] { c.all_reduce(bf16, ReduceOp::Max); });
  // BF16 sums (DiLoCo's bf16 outer deltas): small integers and their average are exact.
  for (int64_t i = 0; i < 4; ++i) bf16.data<uint16_t>()[i] = f32_to_bf16(static_cast<float>(c.rank() + 1 + i));
  c.all_reduce_async(bf16, ReduceOp::Sum)->wait();
  const int n = c.size();
  h.check(bf16_to_f32(bf16.data<uint16_t>()[1]) == static_cast<float>(n * (n + 1) / 2 + n), "bf16 sum {}",
          bf16_to_f32(bf16.data<uint16_t>()[1]));
  for (int64_t i = 0; i < 4; ++i) bf16.data<uint16_t>()[i] = f32_to_bf16(static_cast<float>(2 * c.rank()));
  c.all_reduce(bf16, ReduceOp::Avg);
  h.check(bf16_to_f32(bf16.data<uint16_t>()[3]) == static_cast<float>(n - 1), "bf16 avg {}",
          bf16_to_f32(bf16.data<uint16_t>()[3]));
  Tensor u16 = Tensor::zeros({4 * c.size()}, DType::U16), u16_out = Tensor::zeros({4}, DType::U16);
  h.expect_error("got U16", [&] { c.reduce_scatter(u16, u16_out, ReduceOp::Max); });
  Tensor a = Tensor::zeros({3}), wrong = Tensor::zeros({3 * c.size() + 1});
  h.expect_error("`out` needs size() * in.numel()", [&] { c.all_gather(a, wrong); });
  h.expect_error("root -1 is not a rank of the group", [&] { c.broadcast(a, -1); });
  h.expect_error("peer " + std::to_string(c.size()) + " is not a rank", [&] { c.send(a, c.size(), 0); });
  h.expect_error("tag -3 is outside", [&] { c.recv(a, 0, -3); });
  h.expect_error("undefined tensor", [&] {
    Tensor undefined;
    c.broadcast(undefined, 0);
  });
  // Size mismatches between sender and receiver, on messages to self.
  Tensor three = Tensor::full({3}, 1.0f), five = Tensor::zeros({5});
  h.expect_error("expected 5 elements, received 3", [&] {
    auto s = c.send(three, c.rank(), 9);
    c.recv(five, c.rank(), 9)->wait();
  });
  h.expect_error("MPI_ERR_TRUNCATE", [&] {
    auto s = c.send(five, c.rank(), 10);
    c.recv(three, c.rank(), 10)->wait();
  });
  // The communicator is still usable after argument errors.
  Tensor t = Tensor::full({2}, 1.0f);
  c.all_reduce(t, ReduceOp::Sum);
  h.check(t.f32()[0] == static_cast<float>(c.size()), "all_reduce after errors");
}

}  // namespace

void run_comm_suite(Harness& h, MpiCommunicator& world) {
  h.run("ranks", [&] {
    h.check(world.name() == "world", "name");
    int rank = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    h.check(world.rank() == rank && world.size() == size && world.world_rank() == rank, "rank/size");
  });
  h.run("all_reduce", [&] { test_all_reduce(h, world); });
  h.run("all_reduce_async", [&] { test_all_reduce_async(h, world); });
  h.run("all_gather", [&] { test_all_gather(h, world); });
  h.run("reduce_scatter", [&] { test_reduce_scatter(h, world); });
  h.run("broadcast", [&] { test_broadcast(h, world); });
  h.run("send_recv", [&] { test_send_recv(h, world); });
  h.run("barrier_split", [&] { test_barrier_and_split(h, world); });
  h.run("errors", [&] { test_errors(h, world); });
}

}  // namespace tessera::mpitest
