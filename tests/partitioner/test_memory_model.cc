// The memory model and the tp sharding rules against hand-computed numbers for a tiny GPT:
// 2 blocks, hidden 32, 4 heads, ffn 64, seq 16, vocab 65, micro batch 4 (N = 64 tokens).
#include <catch2/catch.hpp>

#include "partitioner/layer_graph.h"
#include "partitioner/memory_model.h"
#include "partitioner/tp_sharding.h"
#include "tests/unit/tiny_models.h"

using namespace tessera;

namespace {

std::vector<ShardedLayer> tiny_layers(TpOptions tp = {}) {
  const ModelConfig m = tiny_gpt_config();
  return shard_graph(build_layer_graph(m, 65, 4), m, 4, tp);
}

// Hand counts (C = 32, F = 64, H = 4, T = 16, B = 4, N = 64, V = 65):
// block params: qkv 3*32*32 + 96, attn proj 32*32 + 32, fc 32*64 + 64, mlp proj 64*32 + 32,
// two LayerNorms 4*32 = 3072+96+1024+32+2048+64+2048+32+128 = 8544.
constexpr int64_t kBlockParams = 8544;
// embedding 65*32 + 16*32 = 2592; head: ln_f 2*32 + lm_head 65*32 = 2144.
constexpr int64_t kEmbeddingParams = 2592, kHeadParams = 2144;
// block saved floats: x, ln1, x2, ln2 4*N*C = 8192, LN stats 4N = 256, qkv 3NC = 6144,
// attention out NC = 2048, probs B*H*T*T = 4096, fc and gelu 2*N*F = 8192 -> 28928 floats.
constexpr int64_t kBlockSaved = 4 * 28928;
constexpr int64_t kProbs = 4 * 4096;
// head saved floats: x and ln_f(x) 2NC = 4096, 2N stats, logits N*V = 4160, row max and the
// [2, N] sums 3N = 192 -> 8576 floats.
constexpr int64_t kHeadSaved = 4 * 8576;
constexpr int64_t kResidual = 4 * 64 * 32;  // one [N, C] fp32 tensor: 8 KiB

}  // namespace

TEST_CASE("tp sharding of a tiny GPT matches hand counts", "[partitioner][memory]") {
  const auto layers = tiny_layers();
  REQUIRE(layers.size() == 4);
  CHECK(layers[0].params == kEmbeddingParams);
  CHECK(layers[1].params == kBlockParams);
  CHECK(layers[3].params == kHeadParams);
  CHECK(layers[1].activation_bytes == kBlockSaved);
  CHECK(layers[1].attention_bytes == kProbs);
  CHECK(layers[3].activation_bytes == kHeadSaved);
  CHECK(layers[1].input_bytes == kResidual);

  // The layer graph's own counts (unsharded) agree for the parameters, FLOPs and block activations.
  const LayerGraph g = build_layer_graph(tiny_gpt_config(), 65, 4);
  for (size_t i = 0; i < g.layers.size(); ++i) {
    CHECK(layers[i].params == g.layers[i].params);
    CHECK(layers[i].forward_flops == Approx(g.layers[i].forward_flops));
  }
  CHECK(layers[1].activation_bytes == g.layers[1].activation_bytes);

  // ffn_hidden_size 0 means 4 * hidden, as the layer graph reads it.
  ModelConfig m0 = tiny_gpt_config();
  m0.ffn_hidden_size = 0;
  const LayerGraph g0 = build_layer_graph(m0, 65, 4);
  CHECK(shard_layer(g0.layers[1], m0, 65, 4, {}).params == g0.layers[1].params);

  // tp = 2: matrices and their column biases split, LayerNorms and row-parallel biases not:
  // (8544 - 192) / 2 + 192 = 4368. Vocab 65 pads to 66 -> 33 rows per rank.
  const auto tp2 = tiny_layers({2});
  CHECK(tp2[1].params == 4368);
  CHECK(tp2[0].params == 33 * 32 + 16 * 32);
  CHECK(tp2[3].params == 2 * 32 + 33 * 32);
  // Saved: the replicated 4NC + 4N stay, the rest halves: 8448 + (6144 + 2048 + 4096 + 8192) / 2.
  CHECK(tp2[1].activation_bytes == 4 * (8448 + 10240));
  // Two all-reduces of [N, C] forward and two backward per block.
  REQUIRE(tp2[1].forward_comm.size() == 2);
  REQUIRE(tp2[1].backward_comm.size() == 2);
  CHECK(tp2[1].forward_comm[0].bytes == kResidual);
  CHECK(tp2[1].forward_comm[0].kind == CollectiveKind::AllReduce);

  // Sequence parallelism also shards the replicated region: 8448 / 2 + 10240.
  const auto sp = tiny_layers({2, true});
  CHECK(sp[1].activation_bytes == 4 * (4224 + 10240));
  CHECK(sp[1].input_bytes == kResidual / 2);

  // Mixed precision (2-byte activations): only the GEMM inputs (ln1 and ln2 2NC, attention out
  // NC, gelu NF) and the probs are 2 bytes; x, x2, the stats, qkv and fc stay fp32.
  CHECK(tiny_layers({1, false, 2})[1].activation_bytes ==
        4 * (4096 + 256 + 6144 + 4096) + 2 * (4096 + 2048 + 4096 + 4096));
}

TEST_CASE("memory of one rank holding the whole tiny GPT", "[partitioner][memory]") {
  const auto layers = tiny_layers();
  MemoryOptions o;
  o.microbatches = 4;
  const MemoryBreakdown m = stage_memory(layers, {{0, 4}}, 0, o);
  const int64_t params = kEmbeddingParams + 2 * kBlockParams + kHeadParams;  // 21824
  CHECK(params == 21824);
  CHECK(m.params == 4 * params);
  CHECK(m.grads == 4 * params);
  CHECK(m.optimizer == 8 * params);  // AdamW: two fp32 moments
  // One rank, no pipeline: each microbatch's backward runs before the next forward.
  CHECK(m.in_flight == 1);
  CHECK(m.activations == 2 * kBlockSaved + kHeadSaved);
  // The largest backward transient: a block's saved bytes plus its input and output.
  CHECK(m.workspace == kBlockSaved + 2 * kResidual);
  CHECK(m.comm_buffers == 0);
  CHECK(m.total() == 16 * params + 2 * kBlockSaved + kHeadSaved + kBlockSaved + 2 * kResidual);
}

TEST_CASE("memory under schedules, recompute, ZeRO-1 and data parallelism", "[partitioner][memory]") {
  const auto layers = tiny_layers();
  MemoryOptions o;
  o.pp = 2;
  o.microbatches = 8;
  const std::vector<LayerRange> stage0 = {{0, 2}}, stage1 = {{2, 4}};

  SECTION("1F1B keeps p - s microbatches, GPipe all m") {
    MemoryBreakdown m0 = stage_memory(layers, stage0, 0, o), m1 = stage_memory(layers, stage1, 1, o);
    CHECK(m0.in_flight == 2);
    CHECK(m0.activations == 2 * kBlockSaved);
    CHECK(m1.in_flight == 1);
    CHECK(m1.activations == kBlockSaved + kHeadSaved);
    // An activation and a gradient message buffer at the stage boundary.
    CHECK(m0.comm_buffers == 2 * kResidual);
    o.schedule = ScheduleKind::GPipe;
    m0 = stage_memory(layers, stage0, 0, o);
    CHECK(m0.in_flight == 8);
    CHECK(m0.activations == 8 * kBlockSaved);
  }
  SECTION("selective recompute drops the attention probabilities") {
    o.recompute = Recompute::Selective;
    const MemoryBreakdown m0 = stage_memory(layers, stage0, 0, o);
    CHECK(m0.activations == 2 * (kBlockSaved - kProbs));
  }
  SECTION("full recompute keeps only the chunk input, plus the rerun chunk in the workspace") {
    o.recompute = Recompute::Full;
    const MemoryBreakdown m1 = stage_memory(layers, stage1, 1, o);
    CHECK(m1.activations == kResidual);  // 1 in flight on the last stage
    const MemoryBreakdown m0 = stage_memory(layers, stage0, 0, o);
    CHECK(m0.activations == 2 * 4 * 64);  // stage 0's input is the int32 tokens
    // The rerun forward saves the whole chunk (block + head) for one microbatch, and the
    // largest backward transient comes on top.
    CHECK(m1.workspace == kBlockSaved + kHeadSaved + (kBlockSaved + 2 * kResidual));
  }
  SECTION("ZeRO-1 shards the optimizer state and adds the gradient slice") {
    o.pp = 1;
    o.dp = 4;
    o.zero_stage = 1;
    const MemoryBreakdown m = stage_memory(layers, {{0, 4}}, 0, o);
    CHECK(m.optimizer == 8 * (21824 / 4));
    CHECK(m.grads == 4 * (21824 + 21824 / 4));
    CHECK(m.comm_buffers == 0);
    o.zero_stage = 0;
    o.bucket_bytes = 16 * 1024;
    const MemoryBreakdown plain = stage_memory(layers, {{0, 4}}, 0, o);
    CHECK(plain.optimizer == 8 * 21824);
    CHECK(plain.comm_buffers == 16 * 1024);  // one gradient bucket in flight
  }
  SECTION("mixed precision: fp32 masters with bf16 GEMM copies, fp32 gradients and moments") {
    o.pp = 1;
    o.mixed_precision = true;
    const MemoryBreakdown m = stage_memory(layers, {{0, 4}}, 0, o);
    CHECK(m.params == (4 + 2) * 21824);
    CHECK(m.grads == 4 * 21824);
    CHECK(m.optimizer == 8 * 21824);
  }
}

TEST_CASE("RangeMemory agrees with stage_memory", "[partitioner][memory]") {
  const auto layers = tiny_layers({2});
  for (Recompute rc : {Recompute::None, Recompute::Selective, Recompute::Full}) {
    for (int zero : {0, 1, 2, 3}) {
      MemoryOptions o;
      o.tp = 2;
      o.dp = 2;
      o.pp = 3;
      o.microbatches = 5;
      o.recompute = rc;
      o.zero_stage = zero;
      o.bucket_bytes = 1000;
      const RangeMemory fast(layers, o);
      for (int s = 0; s < 3; ++s) {
        for (int first = 0; first < 4; ++first) {
          for (int last = first + 1; last <= 4; ++last) {
            CHECK(fast.total(s, first, last) == stage_memory(layers, {{first, last}}, s, o).total());
          }
        }
      }
    }
  }
}

TEST_CASE("interleaved memory walks the schedule", "[partitioner][memory]") {
  MemoryOptions o;
  o.pp = 2;
  o.virtual_stages = 2;
  o.microbatches = 4;
  o.schedule = ScheduleKind::Interleaved;
  int in_flight = 0;
  // Equal chunks: the peak is the schedule's in-flight peak times one chunk. Rank 0 of p = 2,
  // v = 2 warms up with (p - 1) * 2 + (v - 1) * p = 4 forwards ((0,c0) (1,c0) (0,c1) (1,c1)),
  // and its steady state starts with one more forward ((2,c0)) before its first backward
  // frees anything: 5 microbatch-chunks saved at once (the walk in test_schedule_sim.cc).
  const int64_t peak = peak_saved_bytes({100, 100}, 0, o, &in_flight);
  CHECK(in_flight == 5);
  CHECK(peak == 500);
}

TEST_CASE("format_bytes", "[partitioner][memory]") {
  CHECK(format_bytes(512) == "512 B");
  CHECK(format_bytes(1536) == "1.5 KiB");
  CHECK(format_bytes(31.2 * 1024 * 1024 * 1024) == "31.2 GiB");
}
