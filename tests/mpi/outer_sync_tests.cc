// Local SGD / DiLoCo outer sync over a real dp group (2 ranks = 2 replicas), with the inner
// optimizer replaced by prescribed parameter moves so every expected value is known exactly:
// the hand-computed DiLoCo example (plain, ZeRO-sharded outer state, bf16 deltas), local SGD
// averaging, the streaming schedule (staggered fragments, delayed application), a reduction
// progressing in the background, and the checkpoint state of a reduction in flight.
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "runtime/comm/mpi_communicator.h"
#include "runtime/model/model.h"
#include "runtime/train/outer_sync.h"
#include "tests/mpi/mpi_test_util.h"

namespace tessera::mpitest {
namespace {

// A tiny MLP whose flat buffers stand in for a replica's parameters.
struct Replica {
  ModelConfig config;
  LayerGraph graph;
  std::unique_ptr<Model> model;
  std::unique_ptr<FlatParameters> flat;
  explicit Replica(int dp) {
    config.arch = "mlp";
    config.num_layers = 2;
    config.hidden_size = 4;
    config.seq_length = 4;
    graph = build_layer_graph(config, 5, 2);
    model = std::make_unique<Model>(config, graph, TpGroup::single(), 3);
    flat = std::make_unique<FlatParameters>(std::vector<Model*>{model.get()}, dp);
  }
  int64_t used() const { return flat->segments().back().offset + flat->segments().back().numel; }
  float* values() const { return flat->values().f32(); }
};

// Element i's scale: the example is computed for scale 1 and is linear in it.
float scale(int64_t i) { return 1.f + 0.25f * static_cast<float>(i % 5); }

// The hand-computed example. Both replicas start at 0; in outer step k replica 0 moves by
// -d0[k], replica 1 by -d1[k] (times the element's scale), so the outer gradient, the mean
// of anchor - theta_r, is g = (d0 + d1) / 2 = 2, 1, -1. With lr 0.7, momentum 0.9, Nesterov
// (buf = 0.9 buf + g; step = g + 0.9 buf; anchor -= 0.7 step):
//   k=1: buf = 2,                 step = 2 + 1.8 = 3.8,       anchor = -0.7 * 3.8 = -2.66
//   k=2: buf = 1.8 + 1 = 2.8,     step = 1 + 2.52 = 3.52,     anchor = -2.66 - 2.464 = -5.124
//   k=3: buf = 2.52 - 1 = 1.52,   step = -1 + 1.368 = 0.368,  anchor = -5.124 - 0.2576 = -5.3816
// and after each sync both replicas hold the anchor.
void test_hand_computed(Harness& h, Communicator& dp, bool sharded, bool bf16) {
  h.run(fmt::format("diloco.hand_computed{}{}", sharded ? ".sharded" : "", bf16 ? ".bf16" : ""), [&] {
    Replica r(dp.size());
    r.flat->values().fill(0.f);
    const OuterSyncConfig config{true, 1, 1, 0, bf16, sharded, {0.7f, 0.9f, true}};
    OuterSync sync(*r.flat, &dp, config, std::vector<int>(r.model->layers().size(), 0));
    const float d[2][3] = {{1.f, 2.f, -0.5f}, {3.f, 0.f, -1.5f}};
    const float expected[3] = {-2.66f, -5.124f, -5.3816f};
    for (int k = 0; k < 3; ++k) {
      for (int64_t i = 0; i < r.used(); ++i) r.values()[i] -= d[dp.rank()][k] * scale(i);
      sync.after_inner_step(k + 1);
      for (int64_t i = 0; i < r.used(); ++i) {
        const float want = expected[k] * scale(i);
        if (!h.check(std::abs(r.values()[i] - want) <= 1e-5f * std::abs(want), "step {} element {}: {} != {}", k + 1,
                     i, r.values()[i], want)) {
          return;
        }
      }
      // A ring all-reduce of the fp32 (or bf16) deltas: each rank sends the buffer once.
      const double bytes = static_cast<double>(sharded ? (r.used() + 1) / 2 * 2 : r.used()) * (bf16 ? 2 : 4);
      h.check(std::abs(sync.stats().bytes - bytes) < 1, "bytes {} != {}", sync.stats().bytes, bytes);
    }
    h.check(sync.replicas_identical(3), "replicas identical after a sync");
  });
}

// Local SGD with H = 2: nothing moves at step 1; at step 2 both hold their mean.
void test_local_sgd(Harness& h, Communicator& dp) {
  h.run("local_sgd.average", [&] {
    Replica r(dp.size());
    const OuterSyncConfig config{false, 2, 1, 0, false, false, {1.f, 0.f, false}};
    OuterSync sync(*r.flat, &dp, config, std::vector<int>(r.model->layers().size(), 0));
    for (int64_t i = 0; i < r.used(); ++i) r.values()[i] = static_cast<float>(dp.rank() * 4 + 1) * scale(i);
    sync.after_inner_step(1);
    h.check(r.values()[1] == static_cast<float>(dp.rank() * 4 + 1) * scale(1), "moved before the sync");
    h.check(!sync.replicas_identical(1) && sync.stats().bytes == 0, "no traffic between syncs");
    sync.after_inner_step(2);
    for (int64_t i = 0; i < r.used(); ++i) {
      const float mean = 3.f * scale(i);
      if (!h.check(r.values()[i] == mean, "element {}: {} != mean {}", i, r.values()[i], mean)) break;
    }
  });
}

// Streaming: 2 fragments (the first layer, the rest), H = 4, tau = 1, local SGD. Each step
// replica r adds r + 1 to every parameter; fragment f launches at steps s % 4 == phase(f)
// (2 and 0) with the values of that step, and its mean replaces the fragment after step s + 1.
void test_streaming(Harness& h, Communicator& dp) {
  h.run("streaming.schedule", [&] {
    Replica r(dp.size());
    r.flat->values().fill(0.f);
    const OuterSyncConfig config{false, 4, 2, 1, false, false, {1.f, 0.f, false}};
    std::vector<int> fragment(r.model->layers().size(), 1);
    fragment[0] = 0;
    OuterSync sync(*r.flat, &dp, config, fragment);
    const int phase[2] = {2, 0};
    float model[2][2] = {{0, 0}, {0, 0}};  // [fragment][replica]: the expected value
    float pending[2] = {0, 0};
    for (int s = 1; s <= 9; ++s) {
      for (auto& f : model) {
        for (int q = 0; q < 2; ++q) f[q] += static_cast<float>(q + 1);
      }
      bool sent = false;
      for (int f = 0; f < 2; ++f) {
        if (s % 4 == phase[f]) {
          pending[f] = (model[f][0] + model[f][1]) / 2;
          sent = true;
        }
        if (s > 1 && (s - 1) % 4 == phase[f]) model[f][0] = model[f][1] = pending[f];
      }
      for (int64_t i = 0; i < r.used(); ++i) r.values()[i] += static_cast<float>(dp.rank() + 1);
      sync.after_inner_step(s);
      h.check((sync.stats().bytes > 0) == sent, "step {}: bytes {} (a launch: {})", s, sync.stats().bytes, sent);
      for (const FlatSegment& seg : r.flat->segments()) {
        const float want = model[fragment[seg.layer]][dp.rank()];
        const float got = r.values()[seg.offset];
        h.check(got == want, "step {} layer {}: {} != {}", s, seg.layer, got, want);
      }
    }
  });
}

// A streaming reduction completes through progress() alone (what the layer hooks call while
// the inner steps compute): Open MPI advances a non-blocking collective only inside MPI calls,
// so without it the whole transfer would wait for the apply step. Then the apply waits for
// nothing and the fragment holds the replicas' average.
void test_progress(Harness& h, Communicator& dp) {
  h.run("streaming.progress", [&] {
    Replica r(dp.size());
    r.flat->values().fill(static_cast<float>(dp.rank() + 1));
    const OuterSyncConfig config{false, 2, 1, 1, false, false, {1.f, 0.f, false}};
    OuterSync sync(*r.flat, &dp, config, std::vector<int>(r.model->layers().size(), 0));
    sync.after_inner_step(1);
    sync.after_inner_step(2);  // launches (H 2); from here on only progress() moves the reduction
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int incomplete = 1;
    while (incomplete > 0 && std::chrono::steady_clock::now() < deadline) {
      incomplete = sync.progress();
      if (incomplete > 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    h.check(incomplete == 0, "the reduction did not complete through progress() in 10 s");
    sync.after_inner_step(3);  // applies (tau 1)
    for (int64_t i = 0; i < r.used(); ++i) {
      if (!h.check(r.values()[i] == 1.5f, "element {}: {} != 1.5", i, r.values()[i])) break;
    }
  });
}

// A checkpoint taken while a reduction is in flight, loaded into a fresh OuterSync, continues
// exactly like the original.
void test_state_roundtrip(Harness& h, Communicator& dp) {
  h.run("state.in_flight", [&] {
    Replica a(dp.size()), b(dp.size());
    const OuterSyncConfig config{true, 4, 2, 2, false, false, {0.7f, 0.9f, true}};
    std::vector<int> fragment(a.model->layers().size(), 1);
    fragment[0] = 0;
    OuterSync first(*a.flat, &dp, config, fragment);
    const auto move = [&](Replica& r, int s) {
      const float by = 0.01f * static_cast<float>((dp.rank() + 1) * s);
      for (int64_t i = 0; i < r.used(); ++i) r.values()[i] -= by * scale(i);
    };
    for (int s = 1; s <= 5; ++s) {  // fragment 1 launched at step 4, due at 6; fragment 0 done at 2 + 2
      move(a, s);
      first.after_inner_step(s);
    }
    std::map<std::string, std::string> metadata;
    const auto tensors = first.state(metadata);
    h.check(tensors.count("outer.pending.1") == 1 && tensors.count("outer.pending.0") == 0, "pending fragment 1 saved");
    b.flat->values().copy_from(a.flat->values());
    OuterSync second(*b.flat, &dp, config, fragment);
    second.load_state(tensors, metadata);
    for (int s = 6; s <= 11; ++s) {
      move(a, s);
      move(b, s);
      first.after_inner_step(s);
      second.after_inner_step(s);
    }
    for (int64_t i = 0; i < a.used(); ++i) {
      if (!h.check(a.values()[i] == b.values()[i], "element {}: {} != {}", i, a.values()[i], b.values()[i])) break;
    }
  });
}

}  // namespace
}  // namespace tessera::mpitest

int main(int argc, char** argv) {
  using namespace tessera;
  MpiEnvironment env(&argc, &argv);
  int code = 0;
  try {
    auto world = MpiCommunicator::world(20.0);
    mpitest::Harness h(*world, "outer_sync");
    TESSERA_CHECK(world->size() == 2, "the outer sync tests run on 2 ranks (2 replicas)");
    for (bool sharded : {false, true}) mpitest::test_hand_computed(h, *world, sharded, false);
    mpitest::test_hand_computed(h, *world, false, true);
    mpitest::test_local_sgd(h, *world);
    mpitest::test_streaming(h, *world);
    mpitest::test_progress(h, *world);
    mpitest::test_state_roundtrip(h, *world);
    code = h.finish();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] ERROR: %s\n", env.world_rank(), e.what());
    abort_job(1);
  }
  return code;
}
