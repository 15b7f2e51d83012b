// `tessera plan`: the planner's command line, cluster files, and the on-machine calibration
// (which runs kernels and MPI, so it lives here; the fitting is in partitioner/cost_model).
#include "launcher/plan_command.h"

#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "runtime/compute/compute.h"
#include "runtime/compute/cpu_backend.h"
#include "launcher/config_loader.h"
#include "launcher/config_tree.h"
#include "partitioner/plan_report.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/data/read_file.h"
#include "runtime/data/vocabulary.h"
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

// Upper bound of the counting options (--world, --top, ...), as the checkpoint format's for tp.
constexpr int kMaxCount = 1 << 20;

nlohmann::json node_to_json(const config::ConfigNode& n) {
  using K = config::ConfigNode::Kind;
  switch (n.kind) {
    case K::Null: return nullptr;
    case K::Scalar:
      if (!n.quoted) {
        if (auto b = config::scalar_bool(n)) return *b;
        if (auto i = config::scalar_integer<int64_t>(n)) return *i;
        if (auto d = config::scalar_number(n)) return *d;
      }
      return n.text;
    case K::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& item : n.items) a.push_back(node_to_json(item));
      return a;
    }
    case K::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& [k, v] : n.entries) o[k] = node_to_json(v);
      return o;
    }
  }
  return nullptr;
}

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

// Measures this machine and writes the cache. Under mpirun with >= 2 ranks also the MPI link.
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

int64_t resolve_vocab(const Config& c, int64_t given) {
  if (given > 0) return given;
  const std::string& v = c.model.vocab;
  if (v == "bytes") return 256;
  if (v == "chars") {
    try {
      return Vocabulary::chars(read_file(c.data.path)).size();
    } catch (const InputError& e) {
      throw InputError(fmt::format("{} (model.vocab: chars needs the data file for its size; or give --vocab N)", e.what()));
    }
  }
  return std::stoll(v);  // validated by the config loader
}

// Parses each name of a list option, naming the option in the error.
template <typename Parse>
auto parse_list(const std::vector<std::string>& names, const char* option, Parse parse) {
  std::vector<decltype(parse(names.front()))> out;
  for (const auto& n : names) {
    try {
      out.push_back(parse(n));
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}: {}", option, e.what()));
    }
  }
  return out;
}

}  // namespace

std::string default_calibration_path() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fmt::format("{}/tessera/calibration.json", xdg);
  const char* home = std::getenv("HOME");
  return fmt::format("{}/.cache/tessera/calibration.json", home && *home ? home : ".");
}

ClusterModel load_cluster(const std::string& path) {
  const std::string text = read_file(path);
  const bool json = path.size() >= 5 && path.substr(path.size() - 5) == ".json";
  nlohmann::json j;
  if (json) {
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
  } else {
    j = node_to_json(config::parse_yaml(text, path));
  }
  if (j.is_object() && j.contains("tessera_calibration")) {
    TESSERA_REQUIRE(j.contains("cluster"), "{}: calibration cache without a cluster entry", path);
    j = j["cluster"];
  }
  return cluster_from_json(j, path);
}

CLI::App* add_plan_command(CLI::App& app, PlanOptions& o) {
  CLI::App* cmd = app.add_subcommand("plan", "Rank the parallel layouts of a config for a world size and memory cap");
  cmd->add_option("config", o.config_path, "YAML config file (optional with --calibrate)");
  cmd->add_option("--set", o.overrides, "Override a config field: --set train.global_batch_size=48")->take_all();
  // CLI11's PositiveNumber reports its range as "0 to 1.797...e308"; a named range reads better.
  const CLI::Range positive(1, kMaxCount);
  cmd->add_option("--world,-n", o.world, "World size (ranks) to plan for")->check(positive);
  cmd->add_option("--memory-cap", o.memory_cap, "Memory per rank, e.g. 24GiB (default: the cluster's)");
  cmd->add_option("--cluster", o.cluster_path, "Cluster description (configs/clusters/*.yaml); default: this machine's calibration");
  cmd->add_option("--top", o.top, "Rows of the table")->check(positive);
  cmd->add_option("--json", o.json_path, "Write the best plan as JSON here");
  cmd->add_flag("--calibrate", o.calibrate, "Measure this machine (under mpirun -np 2: also MPI) and cache it");
  cmd->add_option("--cache", o.cache_path, "Calibration cache (default ~/.cache/tessera/calibration.json)");
  cmd->add_option("--micro-batch", o.micro_batch_sizes, "Micro batch sizes to try (default 1,2,4,8 and the config's)")
      ->delimiter(',');
  cmd->add_option("--schedules", o.schedules, "Schedules to try: gpipe,1f1b,interleaved")->delimiter(',');
  cmd->add_option("--recompute", o.recompute, "Recompute modes to try: none,selective,full")->delimiter(',');
  cmd->add_option("--zero", o.zero_stages, "ZeRO stages to try: 0,1")->delimiter(',');
  cmd->add_option("--sequence-parallel", o.sequence_parallel, "both | on | off")
      ->check(CLI::IsMember({"both", "on", "off"}));
  cmd->add_option("--max-virtual-stages", o.max_virtual_stages, "Interleaved: try v = 2..this")->check(positive);
  cmd->add_option("--vocab", o.vocab, "Vocabulary size (default: from model.vocab and the data file)");
  cmd->add_flag("--config-layout", o.config_layout,
                "Plan only the config's own layout (what parallel.partition: auto runs): balance, simulate, size");
  return cmd;
}

int run_plan(const PlanOptions& o) {
  const std::string cache = o.cache_path.empty() ? default_calibration_path() : o.cache_path;
  std::optional<ClusterModel> calibrated;
  if (o.calibrate) {
    calibrated = calibrate(cache, true, true);
    if (!calibrated) return 0;  // ranks other than 0
    if (o.config_path.empty()) return 0;
  }
  if (mpi_is_active()) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) return 0;
  }
  TESSERA_REQUIRE(!o.config_path.empty(), "tessera plan needs a CONFIG (or --calibrate alone)");
  const Config config = load_config(o.config_path, o.overrides);
  const int64_t vocab = resolve_vocab(config, o.vocab);

  ClusterModel cluster;
  if (!o.cluster_path.empty()) {
    cluster = load_cluster(o.cluster_path);
  } else if (calibrated) {
    cluster = *calibrated;
  } else if (fs::exists(cache)) {
    cluster = load_cluster(cache);
  } else {
    std::cout << fmt::format("no --cluster and no calibration at {}: measuring this machine's compute first "
                             "(MPI link defaults; `mpirun -np 2 tessera plan --calibrate` measures it)\n", cache);
    cluster = *calibrate(cache, false, true);
  }

  SearchOptions so = search_options_from_config(config, o.world);
  so.memory_cap = o.memory_cap.empty() ? 0.0 : parse_byte_size(o.memory_cap, "--memory-cap");
  so.micro_batch_sizes = o.micro_batch_sizes;
  if (so.micro_batch_sizes.empty()) so.micro_batch_sizes = {1, 2, 4, 8, config.train.micro_batch_size};
  if (!o.schedules.empty()) so.schedules = parse_list(o.schedules, "--schedules", parse_schedule);
  if (!o.recompute.empty()) so.recompute = parse_list(o.recompute, "--recompute", parse_recompute);
  if (!o.zero_stages.empty()) so.zero_stages = o.zero_stages;
  if (o.sequence_parallel == "on") so.sequence_parallel = {true};
  if (o.sequence_parallel == "off") so.sequence_parallel = {false};
  so.max_virtual_stages = o.max_virtual_stages;

  const CostModel cost(cluster, so.precision != "fp32");
  if (o.config_layout) {
    const PartitionPlan plan = plan_config_layout(config, vocab, o.world, cost);
    std::cout << fmt::format("tessera plan: {} on {} ranks of {} ({}), the config's layout\n", o.config_path, o.world,
                             cluster.name, cluster.source);
    std::cout << format_plan_details(plan);
    std::cout << fmt::format("predicted: {} per step, {} tokens/s, {:.1f}% MFU, {} per rank at most\n",
                             format_seconds(plan.step_time_s), format_rate(plan.tokens_per_s), 100.0 * plan.mfu,
                             format_bytes(static_cast<double>(plan.peak_memory())));
    if (!o.json_path.empty()) {
      std::ofstream out(o.json_path);
      TESSERA_REQUIRE(out.good(), "--json: cannot write '{}'", o.json_path);
      out << to_json(plan).dump(2) << "\n";
    }
    return 0;
  }
  const SearchResult result = search_layouts(config.model, vocab, cost, so);
  const double cap = effective_memory_cap(cluster, o.world, so.memory_cap);
  const ModelConfig& m = config.model;
  std::cout << fmt::format("tessera plan: {} on {} ranks of {} ({})\n", o.config_path, o.world, cluster.name, cluster.source);
  std::cout << fmt::format("model: {} {} layers x {} hidden{}, seq {}, vocab {} ({} graph layers); global batch {}; "
                           "memory cap {} per rank\n",
                           m.arch, m.num_layers, m.hidden_size,
                           m.arch == "gpt" ? fmt::format(", {} heads, ffn {}", m.num_attention_heads, ffn_size(m)) : "",
                           m.seq_length, vocab, m.num_layers + 2, so.global_batch_size, format_bytes(cap));
  std::cout << fmt::format("{} layouts simulated: {} fit, {} rejected in all\n\n", result.evaluated, result.plans.size(),
                           result.rejected.size());
  if (!result.plans.empty()) std::cout << format_plan_table(result, o.top) << "\n";
  if (!result.rejected.empty()) std::cout << "rejected:\n" << format_rejections(result) << "\n";
  TESSERA_REQUIRE(!result.plans.empty(), "{}: no layout for world {} is valid and fits {} per rank (see the rejections above)",
                  o.config_path, o.world, format_bytes(cap));
  const PartitionPlan& best = result.plans.front();
  if (o.details) std::cout << "best: " << format_plan_details(best);
  std::cout << fmt::format("run it: mpirun -np {} tessera train {} --set {}\n", o.world, o.config_path,
                           fmt::join(plan_overrides(best), " "));
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    TESSERA_REQUIRE(out.good(), "--json: cannot write '{}'", o.json_path);
    out << to_json(best).dump(2) << "\n";
    std::cout << "plan written to " << o.json_path << "\n";
  }
  return 0;
}

}  // namespace tessera
