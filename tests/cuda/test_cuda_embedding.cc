// [cuda] tests of the token (vocabulary-sharded) and position embeddings against the CPU twins.
#include <cstring>
#include <tuple>
#include <vector>

#include "kernels/cuda/embedding_cuda.h"
#include "kernels/embedding.h"
#include "tests/cuda/cuda_test_util.h"

namespace cpu = tessera::kernels::cpu;
namespace gpu = tessera::kernels::cuda;
using namespace tessera::cuda_testing;

TEST_CASE("cuda token embedding matches the cpu kernel on a vocabulary shard",
          "[cuda][embedding]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  // (rows, C, vocab, vocab_start, vocab_local): the whole vocabulary; a middle shard, so tokens
  // fall below, inside and above it; many rows over a tiny shard, so rows repeat tokens many
  // times; C above the block size, so a thread covers several columns.
  const std::tuple<int64_t, int64_t, int32_t, int64_t, int64_t> cases[] = {
      {1, 1, 1, 0, 1}, {37, 65, 50, 0, 50}, {300, 33, 100, 40, 25}, {4096, 96, 8, 2, 3}, {64, 600, 5, 0, 5}};
  for (const auto& [rows, C, vocab, start, local] : cases) {
    CAPTURE(rows, C, vocab, start, local);
    const auto tokens = random_ints(rows, 70, 0, vocab - 1);
    const auto wte = random_floats(local * C, 71), dout = random_floats(rows * C, 72);
    const auto dwte0 = random_floats(local * C, 73);
    std::vector<float> out(rows * C), dwte = dwte0;
    cpu::token_embedding_forward(out.data(), tokens.data(), wte.data(), rows, C, start, local);
    cpu::token_embedding_backward(dwte.data(), dout.data(), tokens.data(), rows, C, start, local);

    const DeviceArray<int32_t> tokens_d(tokens);
    const DeviceArray<float> wte_d(wte), dout_d(dout);
    auto out_d = DeviceArray<float>::poisoned(out.size());
    DeviceArray<float> dwte_d(dwte0);
    gpu::token_embedding_forward(out_d.get(), tokens_d.get(), wte_d.get(), rows, C, start, local,
                                 stream.get());
    gpu::token_embedding_backward(dwte_d.get(), dout_d.get(), tokens_d.get(), rows, C, start, local,
                                  stream.get());
    stream.sync();
    check_normalised("token embedding forward", out_d.to_host(), out, 0.0);  // copies and zeros
    // The rows of one token are added in row order on both sides: the same bits.
    check_normalised("token embedding backward (accumulated)", dwte_d.to_host(), dwte, 0.0);
  }
}

TEST_CASE("cuda token embedding backward repeats bit for bit", "[cuda][embedding]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  // Many rows over three tokens: ~1400 additions into each gradient element, spread over many
  // blocks, so an order that depended on block scheduling (atomics; the emulator shuffles the
  // block order of every launch) would change the last bits between the two runs.
  const int64_t rows = 4096, C = 96, vocab = 3;
  const auto tokens = random_ints(rows, 78, 0, vocab - 1);
  const auto dout = random_floats(rows * C, 79), dwte0 = random_floats(vocab * C, 80);
  const DeviceArray<int32_t> tokens_d(tokens);
  const DeviceArray<float> dout_d(dout);
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    DeviceArray<float> dwte_d(dwte0);
    gpu::token_embedding_backward(dwte_d.get(), dout_d.get(), tokens_d.get(), rows, C, 0, vocab,
                                  stream.get());
    stream.sync();
    runs.push_back(dwte_d.to_host());
  }
  REQUIRE(runs[0].size() == runs[1].size());
  CHECK(std::memcmp(runs[0].data(), runs[1].data(), runs[0].size() * sizeof(float)) == 0);
}

TEST_CASE("cuda position embedding matches the cpu kernel", "[cuda][embedding]") {
  TESSERA_REQUIRE_GPU();
  Stream stream;
  const std::tuple<int64_t, int64_t, int64_t> shapes[] = {{1, 1, 1}, {3, 37, 65}, {64, 128, 96}};
  for (const auto& [B, T, C] : shapes) {
    CAPTURE(B, T, C);
    const auto x0 = random_floats(B * T * C, 74), wpe = random_floats(T * C, 75);
    const auto dout = random_floats(B * T * C, 76), dwpe0 = random_floats(T * C, 77);
    std::vector<float> x = x0, dwpe = dwpe0;
    cpu::position_embedding_forward(x.data(), wpe.data(), B, T, C);
    cpu::position_embedding_backward(dwpe.data(), dout.data(), B, T, C);
    DeviceArray<float> x_d(x0), dwpe_d(dwpe0);
    const DeviceArray<float> wpe_d(wpe), dout_d(dout);
    gpu::position_embedding_forward(x_d.get(), wpe_d.get(), B, T, C, stream.get());
    gpu::position_embedding_backward(dwpe_d.get(), dout_d.get(), B, T, C, stream.get());
    stream.sync();
    check_normalised("position embedding forward", x_d.to_host(), x, 0.0);  // one add each
    // Sums over B <= 64 batch rows (plus the accumulated start) in another order.
    check_normalised("position embedding backward (accumulated)", dwpe_d.to_host(), dwpe, 1e-5);
  }
}
