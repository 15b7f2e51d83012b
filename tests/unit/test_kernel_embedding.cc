// Tests of the CPU token (vocabulary-sharded) and position embedding kernels.
#include <catch2/catch.hpp>

#include <algorithm>
#include <tuple>

#include "kernels/embedding.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::kernels::cpu;
using namespace tessera::testing;

namespace {

std::vector<int32_t> random_tokens(int64_t rows, int64_t vocab, uint32_t seed) {
  std::vector<int32_t> t(rows);
  const std::vector<float> u = random_floats(rows, seed, 0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) t[r] = std::min<int32_t>(vocab - 1, u[r] * vocab);
  return t;
}

}  // namespace

// Shapes (rows, C, vocab): odd sizes with repeated tokens, and the GPT's batch (768 rows of
// width 128 over 65 tokens) which takes the OpenMP path. The vocabulary is split into two
// shards of ceil(vocab / 2) rows (the second padded), as under tensor parallelism.
TEST_CASE("kernel token embedding over vocabulary shards equals the unsharded lookup",
          "[kernels][embedding]") {
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {
      {1, 1, 1}, {9, 5, 7}, {768, 128, 65}};
  for (auto [rows, C, vocab] : shapes) {
    CAPTURE(rows, C, vocab);
    const std::vector<int32_t> tokens = random_tokens(rows, vocab, 60);
    const std::vector<float> wte = random_floats(vocab * C, 61), r = random_floats(rows * C, 62);

    const int64_t shard_rows = (vocab + 1) / 2;
    std::vector<float> out(rows * C, 0.0f), part(rows * C, NAN), dwte(vocab * C);
    for (int64_t start : {int64_t{0}, shard_rows}) {
      const int64_t local = std::min(shard_rows, vocab - start);
      std::vector<float> shard(shard_rows * C, NAN);
      std::copy_n(wte.begin() + start * C, local * C, shard.begin());
      token_embedding_forward(part.data(), tokens.data(), shard.data(), rows, C, start, local);
      for (int64_t i = 0; i < rows * C; ++i) out[i] += part[i];
      // The shard's gradient accumulates onto a prior value, which is subtracted again.
      const std::vector<float> prior = random_floats(shard_rows * C, 63);
      std::vector<float> dshard = prior;
      token_embedding_backward(dshard.data(), r.data(), tokens.data(), rows, C, start, local);
      for (int64_t i = 0; i < local * C; ++i) dwte[start * C + i] = dshard[i] - prior[i];
      for (int64_t i = local * C; i < shard_rows * C; ++i) CHECK(dshard[i] == prior[i]);
    }

    std::vector<double> wd = to_double(wte);
    const std::vector<double> rd = to_double(r);
    auto reference = [&] {
      std::vector<double> y(rows * C);
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t c = 0; c < C; ++c) y[i * C + c] = wd[tokens[i] * C + c];
      }
      return y;
    };
    // The lookup is a copy (plus zeros from the other shard): exact.
    check_close("token embedding forward", out, reference(), {0.0, 0.0});
    // A row's gradient sums the upstream rows of its token (up to ~rows / vocab ~ 12 of them,
    // O(1) each) on top of the O(1) prior: ~1e-6 absolute.
    check_gradient("token embedding dwte", wd, [&] { return dot(reference(), rd); }, dwte,
                   {1e-5, 1e-5});
  }
}

TEST_CASE("kernel position embedding forward and backward", "[kernels][embedding]") {
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {
      {1, 1, 1}, {3, 5, 7}, {12, 64, 128}};
  for (auto [B, T, C] : shapes) {
    CAPTURE(B, T, C);
    const std::vector<float> x0 = random_floats(B * T * C, 64), wpe = random_floats(T * C, 65),
                             r = random_floats(B * T * C, 66);
    std::vector<float> x = x0;
    position_embedding_forward(x.data(), wpe.data(), B, T, C);
    const std::vector<float> prior = random_floats(T * C, 67);
    std::vector<float> dwpe = prior;
    position_embedding_backward(dwpe.data(), r.data(), B, T, C);
    for (int64_t i = 0; i < T * C; ++i) dwpe[i] -= prior[i];

    std::vector<double> wd = to_double(wpe);
    const std::vector<double> xd = to_double(x0), rd = to_double(r);
    auto reference = [&] {
      std::vector<double> y(xd);
      for (int64_t i = 0; i < B * T * C; ++i) y[i] += wd[i % (T * C)];
      return y;
    };
    // One float addition per element.
    check_close("position embedding forward", x, reference(), {1e-7, 1e-7});
    // Sums over B <= 12 batch rows of O(1) values plus an O(1) prior.
    check_gradient("position embedding dwpe", wd, [&] { return dot(reference(), rd); }, dwpe,
                   {1e-5, 1e-5});
  }
}
