// Helpers shared by the checkpoint tests (declared in checkpoint_test_util.h):
// a single-rank communicator, temporary directories, and "simulated layouts": every
// (tp, pp) shard of a tiny model built in one process, filled with values that are a pure
// function of (parameter name, global index), so any layout's expected shard is known.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "partitioner/layer_graph.h"
#include "tests/unit/checkpoint_test_util.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/model/embedding_layer.h"
#include "runtime/model/model.h"
#include "runtime/splitmix64.h"

namespace tessera::ckpt_test {
namespace fs = std::filesystem;

// The Communicator of a world of one rank.
class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  void set_step(int64_t) override {}
  CommTraffic traffic() const override { return {}; }
  void all_reduce(Tensor&, ReduceOp) override {}
  std::unique_ptr<CommRequest> all_reduce_async(Tensor&, ReduceOp) override {
    return std::make_unique<Done>();
  }
  void all_gather(const Tensor& in, Tensor& out) override { out.copy_from(in.view(out.shape())); }
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp) override {
    out.copy_from(in.view(out.shape()));
  }
  std::unique_ptr<CommRequest> all_gather_async(const Tensor& in, Tensor& out) override {
    all_gather(in, out);
    return std::make_unique<Done>();
  }
  std::unique_ptr<CommRequest> reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override {
    reduce_scatter(in, out, op);
    return std::make_unique<Done>();
  }
  void broadcast(Tensor&, int) override {}
  std::unique_ptr<CommRequest> send(const Tensor&, int, int) override {
    throw Error("send on a 1-rank world");
  }
  std::unique_ptr<CommRequest> recv(Tensor&, int, int) override { throw Error("recv on a 1-rank world"); }
  void barrier() override { ++barriers; }
  std::unique_ptr<Communicator> split(int, int, const std::string&) override {
    return std::make_unique<LocalCommunicator>();
  }
  int barriers = 0;

 private:
  struct Done : CommRequest {
    void wait() override {}
    bool test() override { return true; }
  };
  std::string name_ = "world";
};

std::unique_ptr<Communicator> local_world() { return std::make_unique<LocalCommunicator>(); }

std::string make_temp_dir() {
  std::string pattern = (fs::temp_directory_path() / "tessera_ckpt_XXXXXX").string();
  REQUIRE(::mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

TempDir::~TempDir() { fs::remove_all(path); }

std::string TempDir::operator/(const std::string& name) const { return (fs::path(path) / name).string(); }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

ModelConfig tiny_model(const std::string& arch) {
  ModelConfig m;
  m.arch = arch;
  m.num_layers = arch == "gpt" ? 2 : 3;
  m.hidden_size = 32;
  m.num_attention_heads = 4;
  m.ffn_hidden_size = 64;
  m.seq_length = 16;
  return m;
}

// Multiples of 1/8 from a hash of (name, salt, index): exact in float, different per tensor.
float value_at(const std::string& name, int salt, int64_t i) {
  const uint64_t x = splitmix64(std::hash<std::string>{}(name) * 31 + static_cast<uint64_t>(salt) * 1000003 +
                                 static_cast<uint64_t>(i));
  return static_cast<float>(static_cast<int>(x % 2001) - 1000) / 8.0f;
}

// The global tensor every layout's shards come from. The index is row-major, so a
// vocabulary table's real rows hold the same values whatever its padding.
Tensor expected_global(const std::string& name, const Shape& shape, int salt) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = value_at(name, salt, i);
  return t;
}

CheckpointState SimRun::state(size_t i, bool with_moments) {
  CheckpointState s;
  s.model = config;
  s.params = shards[i].model->parameters();
  if (with_moments) {
    for (OptimizerMoments& m : shards[i].moments) s.moments.push_back(&m);
  }
  s.padded_rows = vocab_padded_rows(config, graph);
  return s;
}

CheckpointLayout SimRun::layout(size_t i) const {
  return {1, tp, pp, 0, shards[i].tp_rank, shards[i].pp_rank, 0};
}

constexpr int64_t kVocab = 65;

// Builds every shard; with fill, parameters get expected_global(.., 1) and the moments
// salts 2 and 3; otherwise the model's own init (seed 99) and zero moments.
SimRun build_run(const std::string& arch, int tp, int pp, bool fill) {
  SimRun run;
  run.config = tiny_model(arch);
  run.graph = build_layer_graph(run.config, kVocab, 4);
  run.tp = tp;
  run.pp = pp;
  const int layers = static_cast<int>(run.graph.layers.size());
  for (int p = 0; p < pp; ++p) {
    for (int t = 0; t < tp; ++t) {
      Shard s;
      s.tp_rank = t;
      s.pp_rank = p;
      s.model = std::make_unique<Model>(run.config, run.graph, TpGroup{nullptr, t, tp}, 99, p * layers / pp,
                                        (p + 1) * layers / pp);
      for (Parameter* param : s.model->parameters()) {
        OptimizerMoments m{Tensor::zeros(param->value.shape()), Tensor::zeros(param->value.shape())};
        if (fill) {
          param->value.copy_from(
              take_shard(expected_global(param->name, param->global_shape, 1), param->shard, t, tp));
          m.exp_avg = take_shard(expected_global(param->name, param->global_shape, 2), param->shard, t, tp);
          m.exp_avg_sq =
              take_shard(expected_global(param->name, param->global_shape, 3), param->shard, t, tp);
        }
        s.moments.push_back(std::move(m));
      }
      run.shards.push_back(std::move(s));
    }
  }
  return run;
}

// Saves every shard of `run` as one checkpoint, as the ranks of a job would (without MPI).
SaveResult save_run(SimRun& run, const std::string& dir, int64_t step, int keep, bool with_moments) {
  const std::string staging = begin_checkpoint(dir, step);
  std::vector<ShardRecord> records;
  for (size_t i = 0; i < run.shards.size(); ++i) {
    CheckpointState s = run.state(i, with_moments);
    s.step = step;
    records.push_back(write_shard_file(staging, s, run.layout(i)));
  }
  CheckpointState s0 = run.state(0, with_moments);
  s0.step = step;
  s0.extra = {{"note", "simulated"}};
  write_manifest(staging, build_manifest(s0, run.layout(0), "model:\n  arch: " + run.config.arch + "\n",
                                         {{"kind", "tokens"}, {"size", kVocab}}, records));
  return commit_checkpoint(dir, step, keep);
}

void load_run(SimRun& run, const std::string& step_dir, bool with_moments) {
  for (size_t i = 0; i < run.shards.size(); ++i) {
    CheckpointState s = run.state(i, with_moments);
    load_checkpoint(step_dir, s, run.shards[i].tp_rank, run.tp);
  }
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data<char>(), b.data<char>(), a.nbytes()) == 0;
}

// Every shard of `run` holds what a checkpoint saved under tp `saved_tp` must load to:
// the expected values, with padded vocabulary rows zero when the padding changed.
void check_run(SimRun& run, int saved_tp, bool with_moments) {
  const auto rows = vocab_padded_rows(run.config, run.graph);
  for (Shard& s : run.shards) {
    const auto params = s.model->parameters();
    for (size_t j = 0; j < params.size(); ++j) {
      const Parameter& p = *params[j];
      for (int salt = 1; salt <= (with_moments ? 3 : 1); ++salt) {
        Tensor g = expected_global(p.name, p.global_shape, salt);
        const auto r = rows.find(p.name);
        if (r != rows.end() && padded_vocab(r->second, saved_tp) != p.global_shape[0]) {
          g = resize_padded_rows(g, p.global_shape, r->second);
        }
        const Tensor want = take_shard(g, p.shard, s.tp_rank, run.tp);
        const Tensor& got = salt == 1 ? p.value : salt == 2 ? s.moments[j].exp_avg : s.moments[j].exp_avg_sq;
        INFO("tensor " << p.name << " salt " << salt << " tp rank " << s.tp_rank << " of " << run.tp);
        CHECK(same_bits(got, want));
      }
    }
  }
}

}  // namespace tessera::ckpt_test
