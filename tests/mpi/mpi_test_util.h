// A small harness for multi-rank tests run under mpirun: every rank checks its own results
// against values computed from per-rank seeds; failures are printed by the rank that saw
// them, success only by rank 0; an exception ends the job at once (abort_job), so a broken
// collective cannot leave the other ranks hanging.
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include <fmt/format.h>

#include "runtime/comm/communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/tensor.h"
#include "runtime/splitmix64.h"

namespace tessera::mpitest {

// A well-mixed hash of (seed, rank, index).
inline uint64_t key(uint64_t seed, int rank, int64_t i) {
  return splitmix64(splitmix64(seed * 1000003ull + static_cast<uint64_t>(rank)) + static_cast<uint64_t>(i));
}
// Multiples of 1/8 in [-125, 125]: sums over up to 2^16 ranks stay exact in float, so the
// expected result of a reduction does not depend on the order MPI adds in.
inline float f32_value(uint64_t seed, int rank, int64_t i) {
  return static_cast<float>(static_cast<int>(key(seed, rank, i) % 2001) - 1000) / 8.0f;
}
inline int32_t i32_value(uint64_t seed, int rank, int64_t i) {
  return static_cast<int32_t>(key(seed, rank, i) % 200001) - 100000;
}
inline uint16_t u16_value(uint64_t seed, int rank, int64_t i) { return static_cast<uint16_t>(key(seed, rank, i)); }

// Fills t (any dtype) with rank `rank`'s values for `seed`, element i from index offset + i.
inline void fill(Tensor& t, uint64_t seed, int rank, int64_t offset = 0) {
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (t.dtype()) {
      case DType::F32: t.data<float>()[i] = f32_value(seed, rank, offset + i); break;
      case DType::I32: t.data<int32_t>()[i] = i32_value(seed, rank, offset + i); break;
      default: t.data<uint16_t>()[i] = u16_value(seed, rank, offset + i); break;
    }
  }
}

class Harness {
 public:
  Harness(Communicator& world, std::string suite) : world_(world), suite_(std::move(suite)) {}

  template <typename... Args>
  bool check(bool ok, fmt::format_string<Args...> format, Args&&... args) {
    if (!ok) {
      ++failures_;
      if (++printed_ <= kMaxPrinted) {
        std::fprintf(stderr, "[rank %d] FAIL %s/%s: %s\n", world_.rank(), suite_.c_str(), case_.c_str(),
                     fmt::format(format, std::forward<Args>(args)...).c_str());
      }
    }
    return ok;
  }

  // Runs one case; an escaping exception is reported and ends the job.
  template <typename F>
  void run(const std::string& name, F&& body) {
    case_ = name;
    ++cases_;
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[rank %d] ERROR %s/%s: %s\n", world_.rank(), suite_.c_str(), name.c_str(), e.what());
      abort_job(1);
    }
  }

  // Expects `body` to throw tessera::Error whose message contains `needle`.
  template <typename F>
  void expect_error(const std::string& needle, F&& body) {
    try {
      body();
    } catch (const Error& e) {
      check(std::string(e.what()).find(needle) != std::string::npos, "error '{}' does not contain '{}'", e.what(),
            needle);
      return;
    }
    check(false, "expected an error containing '{}'", needle);
  }

  // Agrees on the outcome over the world; returns the process exit code.
  int finish() {
    Tensor total = Tensor::empty({1}, DType::I32);
    total.i32()[0] = failures_;
    world_.all_reduce(total, ReduceOp::Sum);
    const int all = total.i32()[0];
    if (all == 0 && world_.rank() == 0) {
      std::printf("%s: %d cases passed on %d ranks\n", suite_.c_str(), cases_, world_.size());
    }
    if (all != 0 && failures_ > 0) {
      std::fprintf(stderr, "[rank %d] %s: %d failed checks on this rank\n", world_.rank(), suite_.c_str(), failures_);
    }
    std::fflush(stdout);
    return all == 0 ? 0 : 1;
  }

 private:
  static constexpr int kMaxPrinted = 20;
  Communicator& world_;
  std::string suite_;
  std::string case_;
  int cases_ = 0;
  int failures_ = 0;
  int printed_ = 0;
};

}  // namespace tessera::mpitest
