// tessera_mpi_checkpoint_tests <layouts|export|churn|verify> DIR: checkpoints saved by a real MPI job.
//   layouts: for every (tp, pp, dp) layout of the world, save_checkpoint (three times, keep 2),
//            then load on every rank under the same layout, under tp = 1 (the whole model on
//            each rank) and under every other layout, comparing bit for bit with the values
//            saved (a pure function of parameter name and global index).
//   export:  save under tp = world, then rank 0 writes DIR/model.safetensors with
//            export_consolidated and DIR/expected.safetensors with the global tensors
//            computed directly, for the Python interop check (tests/checkpoint.cmake).
//   churn:   save step after step until killed; verify: the newest complete checkpoint
//            holds exactly its step's values (the kill -9 test in tests/checkpoint.cmake).
#include <cstring>
#include <filesystem>
#include <functional>

#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/parallel_grid.h"
#include "runtime/io/safetensors.h"
#include "runtime/model/embedding_layer.h"
#include "runtime/model/model.h"
#include "tests/mpi/mpi_test_util.h"
#include "tests/unit/tiny_models.h"

namespace tessera::mpitest {
namespace {
namespace fs = std::filesystem;

constexpr int64_t kVocab = 65;

// The value of element i of a parameter's global tensor (row-major, so a vocabulary
// table's real rows hold the same values whatever its padding).
Tensor expected_global(const std::string& name, const Shape& shape, int salt) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a: the same on every rank and build
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = f32_value(h, salt, i);
  return t;
}

struct Layout {
  int tp, pp, dp;
  std::string name() const { return fmt::format("tp{}_pp{}_dp{}", tp, pp, dp); }
};

// One rank's model stage and moments under a layout (no grid: tp = pp = 1 when grid is null).
struct RankModel {
  LayerGraph graph;
  std::unique_ptr<Model> model;
  std::vector<OptimizerMoments> moments;
  int tp_rank = 0, tp = 1;

  // fill > 0: values from salts fill, fill + 1, fill + 2 (parameter, exp_avg, exp_avg_sq).
  RankModel(const ModelConfig& m, const ParallelGrid* grid, int fill)
      : graph(build_layer_graph(m, kVocab, 4)) {
    const int layers = static_cast<int>(graph.layers.size());
    const int pp = grid ? grid->pp_size() : 1, stage = grid ? grid->pp_rank() : 0;
    tp = grid ? grid->tp_size() : 1;
    tp_rank = grid ? grid->tp_rank() : 0;
    const TpGroup group = grid ? TpGroup{&grid->tp(), tp_rank, tp} : TpGroup::single();
    model = std::make_unique<Model>(m, graph, group, 99, stage * layers / pp, (stage + 1) * layers / pp);
    for (Parameter* p : model->parameters()) {
      OptimizerMoments mo{Tensor::zeros(p->value.shape()), Tensor::zeros(p->value.shape())};
      if (fill) {
        p->value.copy_from(
            take_shard(expected_global(p->name, p->global_shape, fill), p->shard, tp_rank, tp));
        mo.exp_avg = take_shard(expected_global(p->name, p->global_shape, fill + 1), p->shard, tp_rank, tp);
        mo.exp_avg_sq =
            take_shard(expected_global(p->name, p->global_shape, fill + 2), p->shard, tp_rank, tp);
      }
      moments.push_back(std::move(mo));
    }
  }
  CheckpointState state(const ModelConfig& m) {
    CheckpointState s;
    s.params = model->parameters();
    for (OptimizerMoments& mo : moments) s.moments.push_back(&mo);
    s.padded_rows = vocab_padded_rows(m, graph);
    return s;
  }
};

// Loads step_dir into a fresh model under `grid` (or tp = 1) and compares with the values
// (salts fill..fill + 2) saved under tp `saved_tp`.
void load_and_check(Harness& h, const ModelConfig& m, const std::string& step_dir, const ParallelGrid* grid,
                    int saved_tp, int64_t step, const std::string& what, int fill = 1) {
  RankModel r(m, grid, 0);
  CheckpointState s = r.state(m);
  const int64_t got_step = load_checkpoint(step_dir, s, r.tp_rank, r.tp);
  h.check(got_step == step, "{}: loaded step {}, expected {}", what, got_step, step);
  const auto rows = vocab_padded_rows(m, r.graph);
  const auto params = r.model->parameters();
  for (size_t j = 0; j < params.size(); ++j) {
    const Parameter& p = *params[j];
    for (int salt = fill; salt <= fill + 2; ++salt) {
      Tensor g = expected_global(p.name, p.global_shape, salt);
      const auto real = rows.find(p.name);
      if (real != rows.end() && padded_vocab(real->second, saved_tp) != p.global_shape[0]) {
        g = resize_padded_rows(g, p.global_shape, real->second);
      }
      const Tensor want = take_shard(g, p.shard, r.tp_rank, r.tp);
      const Tensor& have = salt == fill       ? p.value
                           : salt == fill + 1 ? r.moments[j].exp_avg
                                              : r.moments[j].exp_avg_sq;
      h.check(have.shape() == want.shape() &&
                  std::memcmp(have.data<char>(), want.data<char>(), want.nbytes()) == 0,
              "{}: {} (salt {}) differs", what, p.name, salt);
    }
  }
}

std::vector<Layout> layouts_for(int world) {
  std::vector<Layout> out;
  for (int tp : {1, 2, 4}) {
    for (int pp : {1, 2, 4}) {
      if (world % (tp * pp) == 0) out.push_back({tp, pp, world / (tp * pp)});
    }
  }
  return out;
}

void run_layouts(Harness& h, Communicator& world, const std::string& dir) {
  const ModelConfig m = tiny_gpt_config();
  const std::vector<Layout> layouts = layouts_for(world.size());
  for (const Layout& saved : layouts) {
    const std::string ckpt_dir = (fs::path(dir) / saved.name()).string();
    h.run("save." + saved.name(), [&] {
      ParallelGrid grid(world, saved.tp, saved.pp, saved.dp);
      RankModel r(m, &grid, 1);
      for (int64_t step = 1; step <= 3; ++step) {
        CheckpointState s = r.state(m);
        s.step = step;
        const SaveResult res = save_checkpoint(ckpt_dir, s, checkpoint_layout(grid, 0), &world, "model: {}\n",
                                               {{"kind", "tokens"}, {"size", kVocab}}, 2);
        if (world.rank() == 0 && step == 3) {
          h.check(res.removed.size() == 1 && fs::path(res.removed[0]).filename() == "step_1",
                  "keep 2 did not remove step_1");
        }
      }
      if (world.rank() == 0) {
        h.check(list_checkpoints(ckpt_dir).size() == 2, "{} checkpoints kept, expected 2",
                list_checkpoints(ckpt_dir).size());
        const Manifest man = read_manifest(ckpt_dir + "/step_3");
        h.check(man.files.size() == static_cast<size_t>(saved.tp * saved.pp),
                "{} files, expected one per (tp, pp)", man.files.size());
        h.check(man.layout.dp == saved.dp && man.layout.tp == saved.tp && man.layout.pp == saved.pp,
                "manifest layout dp {} tp {} pp {}", man.layout.dp, man.layout.tp, man.layout.pp);
      }
    });
    // A failure on one rank (here a bug: moments that do not match the parameters) is thrown
    // on every rank at once, naming that rank; the previous checkpoint stays current.
    h.run("failure." + saved.name(), [&] {
      ParallelGrid grid(world, saved.tp, saved.pp, saved.dp);
      RankModel r(m, &grid, 1);
      CheckpointState s = r.state(m);
      s.step = 9;
      const int bad = grid.layout().world_rank({saved.tp - 1, 0, saved.pp - 1});  // a shard writer
      if (world.rank() == bad) s.moments.pop_back();
      h.expect_error(fmt::format("saving checkpoint step 9 failed on rank {}: ", bad), [&] {
        save_checkpoint(ckpt_dir, s, checkpoint_layout(grid, 0), &world, "", nullptr, 2);
      });
      const auto found = find_latest_checkpoint(ckpt_dir, &world, nullptr);
      h.check(found == ckpt_dir + "/step_3", "latest is {} after a failed save", found.value_or("none"));
    });
    const std::string step_dir = ckpt_dir + "/step_3";
    h.run("load.tp1." + saved.name(), [&] { load_and_check(h, m, step_dir, nullptr, saved.tp, 3, "tp 1"); });
    for (const Layout& other : layouts) {
      h.run("load." + other.name() + ".from." + saved.name(), [&] {
        ParallelGrid grid(world, other.tp, other.pp, other.dp);
        load_and_check(h, m, step_dir, &grid, saved.tp, 3, other.name());
      });
    }
  }
}

void run_export(Harness& h, Communicator& world, const std::string& dir) {
  const ModelConfig m = tiny_gpt_config();
  h.run("export", [&] {
    ParallelGrid grid(world, world.size(), 1, 1);
    RankModel r(m, &grid, 1);
    CheckpointState s = r.state(m);
    s.step = 11;
    save_checkpoint(dir, s, checkpoint_layout(grid, 0), &world, "model: {}\n", nullptr, 1);
    if (world.rank() != 0) return;
    export_consolidated(dir + "/step_11", dir + "/model.safetensors");
    // Under tp = 1 nothing is padded: the full model's values are the expected export.
    RankModel full(m, nullptr, 1);
    std::map<std::string, Tensor> expected;
    for (Parameter* p : full.model->parameters()) expected[p->name] = p->value;
    write_safetensors(dir + "/expected.safetensors", expected);
    const SafetensorsFile got = read_safetensors(dir + "/model.safetensors");
    h.check(got.tensors.size() == expected.size(), "export holds {} tensors, expected {}", got.tensors.size(),
            expected.size());
  });
}

// Saves step after step (keep 2) until killed, going on from the newest checkpoint; step N's
// values use salts 3N + 1..3N + 3, so a checkpoint mixing files of two saves cannot pass `verify`.
void run_churn(Communicator& world, const std::string& dir) {
  const ModelConfig m = tiny_gpt_config();
  ParallelGrid grid(world, world.size(), 1, 1);
  const auto found = find_latest_checkpoint(dir, &world, nullptr);
  const int64_t first = found ? read_manifest(*found).step + 1 : 1;
  for (int64_t step = first; step < first + 1000000; ++step) {
    RankModel r(m, &grid, static_cast<int>(3 * step + 1));
    CheckpointState s = r.state(m);
    s.step = step;
    save_checkpoint(dir, s, checkpoint_layout(grid, 0), &world, "model: {}\n", nullptr, 2);
    if (world.rank() == 0 && step % 10 == 0) std::printf("saved step %lld\n", static_cast<long long>(step));
  }
}

// The newest checkpoint under DIR loads (on each rank, under tp = 1) with exactly its step's values.
void run_verify(Harness& h, const std::string& dir) {
  h.run("verify", [&] {
    std::vector<std::string> warnings;
    const auto found = find_latest_checkpoint(dir, &warnings);
    // The kill test kills only after a save completed: a missing checkpoint is a lost save.
    h.check(found.has_value(), "no complete checkpoint under {}", dir);
    if (!found) return;
    const int64_t step = read_manifest(*found).step;
    load_and_check(h, tiny_gpt_config(), *found, nullptr, 1, step, "verify " + *found,
                   static_cast<int>(3 * step + 1));
    std::printf("verified %s (%zu warnings)\n", found->c_str(), warnings.size());
    for (const std::string& w : warnings) std::printf("  warning: %s\n", w.c_str());
  });
}

}  // namespace
}  // namespace tessera::mpitest

int main(int argc, char** argv) {
  using namespace tessera;
  MpiEnvironment env(&argc, &argv);
  int code = 0;
  try {
    if (argc != 3) throw Error("usage: tessera_mpi_checkpoint_tests <layouts|export|churn|verify> DIR");
    const std::string mode = argv[1], dir = argv[2];
    auto world = MpiCommunicator::world(60.0);
    // churn and verify work on what a killed job left behind.
    if (mode != "churn" && mode != "verify" && world->rank() == 0) std::filesystem::remove_all(dir);
    world->barrier();
    mpitest::Harness h(*world, "checkpoint." + mode);
    if (mode == "layouts") {
      mpitest::run_layouts(h, *world, dir);
    } else if (mode == "export") {
      mpitest::run_export(h, *world, dir);
    } else if (mode == "churn") {
      mpitest::run_churn(*world, dir);
    } else if (mode == "verify") {
      mpitest::run_verify(h, dir);
    } else {
      throw Error("unknown mode " + mode);
    }
    code = h.finish();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] ERROR: %s\n", env.world_rank(), e.what());
    abort_job(1);
  }
  return code;
}
