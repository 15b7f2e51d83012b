// `tessera plan --calibrate`: the on-machine calibration (GEMM rates, memory bandwidth, GPT
// block times, the MPI link), which runs kernels and MPI, so it lives in the launcher; the
// fitting is in partitioner/cost_model. The command is plan_cli.cc, cluster files cluster_file.cc.
#include "launcher/calibration.h"

#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "runtime/compute/compute.h"
#include "runtime/compute/cpu_backend.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "core/error.h"
#include "runtime/model/transformer_block.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// MPI between ranks of one machine when nothing was measured: Open MPI's shared-memory
// transport as measured here (mpirun -np 2 tessera plan --calibrate, see docs/planner.md).
constexpr double kDefaultLatencyS = 0.5e-6;
constexpr double kDefaultBandwidth = 9.7e9;

// Best time of `trials` runs of f, each repeated until it took >= min_s.
template <typename F>
double time_best(F&& f, int trials = 3, double min_s = 0.02) {
  f();  // warm caches and threads
  double best = 1e30;
  for (int t = 0; t < trials; ++t) {
    int reps = 0;
    const auto t0 = Clock::now();
    double s = 0;
    do {
      f();
      ++reps;
      s = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (s < min_s);
    best = std::min(best, s / reps);
  }
  return best;
}

// FLOP/s of C[m, n] = A[m, k] B[k, n] with `dtype` inputs, through the GEMM the trainer runs
// (oneDNN, runtime/compute).
double gemm_rate(Backend& backend, int64_t m, int64_t n, int64_t k, DType dtype = DType::F32) {
  Tensor a = Tensor::full({m, k}, 0.5f), b = Tensor::full({k, n}, 0.25f), c = Tensor::zeros({m, n});
  if (dtype != DType::F32) {
    Tensor a16 = Tensor::empty(a.shape(), dtype), b16 = Tensor::empty(b.shape(), dtype);
    backend.cast(a, a16);
    backend.cast(b, b16);
    a = a16;
    b = b16;
  }
  const double s = time_best([&] { backend.matmul({a, false, b, false, c}); }, 5, 0.01);
  return 2.0 * static_cast<double>(m) * n * k / s;
}

double triad_bandwidth() {
  const int64_t n = 8 << 20;  // 32 MiB per array: past the caches
  Tensor a = Tensor::zeros({n}), b = Tensor::full({n}, 1.f), c = Tensor::full({n}, 2.f);
  float *pa = a.f32(), *pb = b.f32(), *pc = c.f32();
  const double s = time_best([&] {
    for (int64_t i = 0; i < n; ++i) pa[i] = pb[i] + 0.5f * pc[i];
  });
  return 3.0 * 4.0 * static_cast<double>(n) / s;
}

// Forward + backward of one GPT block of this shape, one thread, no tp.
double block_seconds(int C, int H, int T, int B) {
  TransformerBlock block("h.0", BlockShape{C, H, 4 * C}, 1, 0.02f, 1, TpGroup::single());
  Tensor x = Tensor::full({int64_t{B} * T, C}, 0.1f), dy = Tensor::full({int64_t{B} * T, C}, 0.01f);
  const std::unique_ptr<Compute> compute = make_cpu_compute(Precision::FP32);
  MicrobatchContext ctx;
  ctx.compute = compute.get();
  ctx.tokens = Tensor::zeros({B, T}, DType::I32);
  ctx.targets = ctx.tokens;
  return time_best([&] {
    block.forward(x, ctx);
    block.backward(dy, ctx);
  });
}

double node_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kib = 0;
  while (in >> key >> kib) {
    if (key == "MemTotal:") return kib * 1024.0;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

// The compute side of the calibration (this rank alone, one thread per unit).
ClusterModel measure_compute(nlohmann::json& samples) {
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  CpuBackend backend(CpuGemm::OneDnn);
  // The shapes layers run: rows (tokens) by widths, plus square ones for the large end.
  std::vector<GemmSample> gemm;
  nlohmann::json shapes = nlohmann::json::array();
  auto sample = [&](int64_t m, int64_t n, int64_t k) {
    const double rate = gemm_rate(backend, m, n, k);
    gemm.push_back({std::cbrt(static_cast<double>(m) * n * k), rate});
    shapes.push_back({m, n, k, rate / 1e9});
  };
  for (int64_t rows : {64, 256, 1024}) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{32, 32}, {64, 64}, {128, 128}, {512, 128}, {128, 512}, {256, 256}, {512, 512}}) {
      sample(rows, n, k);
    }
  }
  for (int64_t n : {16, 32, 1024, 2048}) sample(n, n, n);
  ClusterModel c;
  c.name = "calibrated";
  c.source = "calibration";
  c.devices_per_node = cores;
  c.nodes = 1;
  c.oversubscribe = true;
  c.node_memory_bytes = node_memory_bytes();
  c.device.name = "cpu core (oneDNN fp32/bf16)";
  c.device = fit_gemm_curve(gemm, c.device);
  // The bf16 peak (train.precision bf16/fp16) as the measured bf16 : fp32 ratio of a large product.
  const double bf16_ratio = gemm_rate(backend, 1024, 1024, 1024, DType::BF16) / gemm_rate(backend, 1024, 1024, 1024);
  c.device.peak_flops_half = c.device.peak_flops * bf16_ratio;
  samples["gemm_bf16_over_fp32_1024"] = bf16_ratio;
  c.device.memory_bandwidth = triad_bandwidth();
  const double one = gemm_rate(backend, 512, 512, 512);
  omp_set_num_threads(cores);
  const double all = gemm_rate(backend, 512, 512, 512);
  omp_set_num_threads(1);
  c.device.multi_unit_efficiency = cores > 1 ? std::clamp(all / (cores * one), 0.1, 1.0) : 1.0;

  // Element-wise traffic: fitted so that the model reproduces measured GPT block times.
  CostModel unit(c);
  std::vector<LayerSample> layers;
  nlohmann::json block_json = nlohmann::json::array();
  for (auto [C, H, T, B] : {std::array<int, 4>{64, 4, 64, 8}, {128, 4, 64, 12}, {256, 8, 128, 4}}) {
    ModelConfig m;
    m.hidden_size = C;
    m.num_attention_heads = H;
    m.ffn_hidden_size = 4 * C;
    m.seq_length = T;
    LayerSpec spec{"h.0", LayerKind::TransformerBlock};
    const ShardedLayer l = shard_layer(spec, m, 256, B, {});
    LayerSample s;
    s.measured_s = block_seconds(C, H, T, B);
    for (const Gemm& g : l.gemms) s.gemm_s += 3.0 * unit.gemm_seconds(g, 1);
    s.traffic_s = 3.0 * static_cast<double>(l.activation_bytes + l.output_bytes) / c.device.memory_bandwidth;
    layers.push_back(s);
    block_json.push_back({{"hidden", C}, {"heads", H}, {"seq", T}, {"batch", B}, {"seconds", s.measured_s},
                          {"gemm_model_s", s.gemm_s}, {"traffic_model_s", s.traffic_s}});
  }
  c.device.elementwise_passes = fit_elementwise_passes(layers);
  omp_set_num_threads(saved_threads);

  samples["gemm_one_thread_m_n_k_gflops"] = shapes;
  samples["gemm_gflops_all_threads_512"] = all / 1e9;
  samples["triad_gb_s"] = c.device.memory_bandwidth / 1e9;
  samples["gpt_blocks"] = block_json;
  return c;
}

// Mean time of reps runs after one warm-up; every rank runs the same count (collectives).
template <typename F>
double time_fixed(F&& f, int reps) {
  f();
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) f();
  return std::chrono::duration<double>(Clock::now() - t0).count() / reps;
}

// Ping-pong between world ranks 0 and 1 (one-way time = half the round trip) and all-reduce
// over the world, kCommTrials times per size; fitted to alpha + bytes / beta, which keeps the
// fastest trial of each size, as the GEMM rates keep the best of theirs. One timed run per size
// measured this shared machine's load along with the link (a peer descheduled mid-message):
// calibrated so under load, the link came out at 1.2 GB/s where a quiet run gives 9.7 GB/s.
constexpr int kCommTrials = 5;

void measure_comm(MpiCommunicator& world, ClusterModel& c, nlohmann::json& samples) {
  std::vector<MessageSample> p2p, ring;
  nlohmann::json pj = nlohmann::json::array(), aj = nlohmann::json::array();
  const int n = world.size(), r = world.rank();
  for (int64_t floats = 1; floats <= (int64_t{1} << 21); floats *= 8) {
    Tensor t = Tensor::zeros({floats});
    const int reps = floats < 65536 ? 50 : 10;
    const double bytes = 4.0 * static_cast<double>(floats);
    for (int trial = 0; trial < kCommTrials; ++trial) {
      double one_way = 0;
      if (r <= 1) {
        one_way = time_fixed([&] {
          if (r == 0) {
            world.send(t, 1, 7)->wait();
            world.recv(t, 1, 7)->wait();
          } else {
            world.recv(t, 0, 7)->wait();
            world.send(t, 0, 7)->wait();
          }
        }, reps) / 2;
      }
      world.barrier();
      const double ar = time_fixed([&] { world.all_reduce(t, ReduceOp::Sum); }, reps);
      p2p.push_back({bytes, one_way});
      // Ring all-reduce: t = 2(n-1)/n * bytes / beta + 2(n-1) alpha, so fit t / (2(n-1))
      // against bytes / n: its intercept is alpha and its slope 1 / beta.
      ring.push_back({bytes / n, ar / (2.0 * (n - 1))});
      pj.push_back({bytes, one_way});
      aj.push_back({bytes, ar});
    }
  }
  const LinkModel al = fit_alpha_beta(ring);
  const LinkModel pl = r <= 1 ? fit_alpha_beta(p2p) : al;
  // Collectives dominate what the planner times (tp and dp); keep the all-reduce fit for the
  // link and record the ping-pong one next to it.
  c.intra_node = c.inter_node = al;
  samples["p2p_seconds"] = pj;
  samples["all_reduce_seconds"] = aj;
  samples["all_reduce_ranks"] = n;
  samples["p2p_fit"] = {{"latency_us", pl.alpha_s * 1e6}, {"bandwidth_gb_s", pl.bandwidth / 1e9}};
}

// CPU time other processes use while we measure (from /proc/stat minus our own), in cores:
// this machine is shared, and a busy neighbour makes every measured rate too low.
class BackgroundLoad {
 public:
  BackgroundLoad() : busy0_(busy_seconds()), own0_(own_seconds()), t0_(Clock::now()) {}
  double cores() const {
    const double wall = std::chrono::duration<double>(Clock::now() - t0_).count();
    if (wall <= 0 || busy0_ < 0) return 0;
    return std::max(0.0, (busy_seconds() - busy0_ - (own_seconds() - own0_)) / wall);
  }

 private:
  static double busy_seconds() {
    std::ifstream in("/proc/stat");
    std::string cpu;
    double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal)) return -1;
    return (user + nice + system + irq + softirq + steal) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  static double own_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  }
  double busy0_, own0_;
  Clock::time_point t0_;
};

std::string host_name() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace

std::optional<ClusterModel> calibrate(const std::string& cache, bool with_mpi, bool verbose) {
  std::optional<MpiEnvironment> env;
  std::unique_ptr<MpiCommunicator> world;
  if (with_mpi) {
    if (!mpi_is_active()) env.emplace();
    world = MpiCommunicator::world(120.0);
  }
  const int rank = world ? world->rank() : 0;
  nlohmann::json samples;
  ClusterModel c;
  const BackgroundLoad load;
  if (rank == 0) c = measure_compute(samples);
  const double background = load.cores();
  c.intra_node = c.inter_node = {kDefaultLatencyS, kDefaultBandwidth};
  bool comm_measured = false;
  if (world && world->size() >= 2) {
    world->barrier();  // the others sleep-poll here while rank 0 measures compute
    measure_comm(*world, c, samples);
    comm_measured = true;
  }
  if (rank != 0) return std::nullopt;
  c.name = fmt::format("calibrated {}", host_name());
  c.source = cache;
  const nlohmann::json j = {{"tessera_calibration", 1},
                            {"host", host_name()},
                            {"created_unix", std::chrono::duration_cast<std::chrono::seconds>(
                                                 std::chrono::system_clock::now().time_since_epoch()).count()},
                            {"comm_measured", comm_measured},
                            {"background_cores", background},
                            {"cluster", cluster_to_json(c)},
                            {"samples", samples}};
  const fs::path path(cache);
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(cache);
  TESSERA_REQUIRE(out.good(), "cannot write the calibration cache '{}'", cache);
  out << j.dump(2) << "\n";
  if (verbose) {
    const DeviceModel& d = c.device;
    std::cout << fmt::format("calibrated {} cores: GEMM peak {:.1f} GFLOP/s per core (n=16: {:.0f}%, n=128: {:.0f}%), "
                             "{:.1f} GB/s memory, element-wise passes {:.2f}, thread scaling {:.2f}\n",
                             c.devices_per_node, d.peak_flops / 1e9, 100 * d.efficiency(16), 100 * d.efficiency(128),
                             d.memory_bandwidth / 1e9, d.elementwise_passes, d.multi_unit_efficiency);
    std::cout << (comm_measured ? fmt::format("MPI link: latency {:.1f} us, bandwidth {:.2f} GB/s (all-reduce fit over {} ranks)\n",
                                              c.intra_node.alpha_s * 1e6, c.intra_node.bandwidth / 1e9,
                                              samples["all_reduce_ranks"].get<int>())
                                : std::string("MPI link: not measured (run under mpirun -np 2 for that); defaults used\n"));
    if (background > 0.3) {
      std::cout << fmt::format("warning: other processes used {:.1f} cores while measuring: the rates above are "
                               "low; calibrate again on a quiet machine\n", background);
    }
    std::cout << "calibration written to " << cache << "\n";
  }
  return c;
}

}  // namespace tessera
