// Cost model: efficiency-curve compute times, alpha-beta links, cluster descriptions, fits.
#include "partitioner/cost_model.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <optional>

#include "core/error.h"

namespace tessera {
namespace {

constexpr double kGB = 1e9;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// Reads one JSON object's keys with messages naming the file and the dotted key. Keys outside
// `known` are refused first, before a missing one is: a misspelt key is the likelier mistake.
class Fields {
 public:
  Fields(const nlohmann::json& j, std::string source, std::string prefix, std::initializer_list<const char*> known)
      : j_(j), source_(std::move(source)), prefix_(std::move(prefix)) {
    TESSERA_REQUIRE(j.is_object(), "{}: {} must be a map", source_, prefix_.empty() ? "the cluster" : prefix_);
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      const bool ok = std::any_of(known.begin(), known.end(), [&](const char* k) { return it.key() == k; });
      TESSERA_REQUIRE(ok, "{}: unknown key {}", source_, name(it.key()));
    }
  }
  double number(const std::string& key, std::optional<double> fallback = std::nullopt, bool positive = true) const {
    if (!j_.contains(key) || j_[key].is_null()) {
      TESSERA_REQUIRE(fallback.has_value(), "{}: {} is required", source_, name(key));
      return *fallback;
    }
    TESSERA_REQUIRE(j_[key].is_number(), "{}: {} must be a number, not {}", source_, name(key), j_[key].dump());
    const double v = j_[key].get<double>();
    TESSERA_REQUIRE(std::isfinite(v) && (positive ? v > 0 : v >= 0), "{}: {} = {} must be {}", source_,
                    name(key), v, positive ? "> 0" : ">= 0");
    return v;
  }
  std::string text(const std::string& key, const std::string& fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    TESSERA_REQUIRE(j_[key].is_string(), "{}: {} must be a string", source_, name(key));
    return j_[key].get<std::string>();
  }
  bool flag(const std::string& key, bool fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    TESSERA_REQUIRE(j_[key].is_boolean(), "{}: {} must be true or false", source_, name(key));
    return j_[key].get<bool>();
  }
  const nlohmann::json& child(const std::string& key) const {
    TESSERA_REQUIRE(j_.contains(key), "{}: {} is required", source_, name(key));
    return j_[key];
  }
  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }
  std::string name(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }

 private:
  const nlohmann::json& j_;
  std::string source_, prefix_;
};

LinkModel link_from_json(const nlohmann::json& j, const std::string& source, const std::string& key) {
  Fields f(j, source, key, {"latency_us", "bandwidth_gb_s"});
  LinkModel l;
  l.alpha_s = f.number("latency_us", std::nullopt, false) * 1e-6;
  l.bandwidth = f.number("bandwidth_gb_s") * kGB;
  return l;
}

nlohmann::json link_to_json(const LinkModel& l) {
  return {{"latency_us", l.alpha_s * 1e6}, {"bandwidth_gb_s", l.bandwidth / kGB}};
}

}  // namespace

double DeviceModel::efficiency(double size) const {
  if (gemm_efficiency.empty()) return 1.0;
  const auto& t = gemm_efficiency;
  if (size <= t.front().size) return t.front().efficiency;
  if (size >= t.back().size) return t.back().efficiency;
  for (size_t i = 1; i < t.size(); ++i) {
    if (size <= t[i].size) {
      const double a = std::log(t[i - 1].size), b = std::log(t[i].size);
      const double w = b > a ? (std::log(size) - a) / (b - a) : 1.0;
      return t[i - 1].efficiency + w * (t[i].efficiency - t[i - 1].efficiency);
    }
  }
  return t.back().efficiency;
}

double LinkModel::p2p_seconds(double bytes) const { return alpha_s + bytes / bandwidth; }

double LinkModel::all_reduce_seconds(double bytes, int n) const {
  if (n <= 1) return 0;
  return 2.0 * (n - 1) / n * bytes / bandwidth + 2.0 * (n - 1) * alpha_s;
}

double LinkModel::all_gather_seconds(double bytes, int n) const {
  if (n <= 1) return 0;
  return static_cast<double>(n - 1) / n * bytes / bandwidth + (n - 1) * alpha_s;
}

double LinkModel::collective_seconds(CollectiveKind kind, double bytes, int n) const {
  return kind == CollectiveKind::AllReduce ? all_reduce_seconds(bytes, n) : all_gather_seconds(bytes, n);
}

ClusterModel cluster_from_json(const nlohmann::json& j, const std::string& source) {
  Fields f(j, source, "",
           {"name", "devices_per_node", "nodes", "oversubscribe", "node_memory_gib", "device", "intra_node", "inter_node"});
  ClusterModel c;
  c.source = source;
  c.name = f.text("name", source);
  c.devices_per_node = static_cast<int>(f.number("devices_per_node"));
  c.nodes = static_cast<int>(f.number("nodes", 0.0, false));
  c.oversubscribe = f.flag("oversubscribe", false);
  c.node_memory_bytes = f.number("node_memory_gib", 0.0, false) * kGiB;
  {
    Fields d(f.child("device"), source, "device",
             {"name", "peak_tflops", "peak_tflops_bf16", "memory_gib", "memory_bandwidth_gb_s", "elementwise_passes",
              "multi_unit_efficiency", "gemm_efficiency"});
    c.device.name = d.text("name", c.name);
    c.device.peak_flops = d.number("peak_tflops") * 1e12;
    c.device.peak_flops_half = d.number("peak_tflops_bf16", 0.0, false) * 1e12;
    c.device.memory_bytes = d.number("memory_gib", 0.0, false) * kGiB;
    c.device.memory_bandwidth = d.number("memory_bandwidth_gb_s") * kGB;
    c.device.elementwise_passes = d.number("elementwise_passes", 3.0);
    c.device.multi_unit_efficiency = d.number("multi_unit_efficiency", 1.0);
    if (d.has("gemm_efficiency")) {
      const nlohmann::json& curve = d.child("gemm_efficiency");
      TESSERA_REQUIRE(curve.is_array(), "{}: device.gemm_efficiency must be a list of [size, efficiency]", source);
      for (const auto& p : curve) {
        TESSERA_REQUIRE(p.is_array() && p.size() == 2 && p[0].is_number() && p[1].is_number() &&
                            p[0].get<double>() > 0 && p[1].get<double>() > 0 && p[1].get<double>() <= 1.0,
                        "{}: device.gemm_efficiency entry {} must be [size > 0, 0 < efficiency <= 1]",
                        source, p.dump());
        c.device.gemm_efficiency.push_back({p[0].get<double>(), p[1].get<double>()});
      }
      std::sort(c.device.gemm_efficiency.begin(), c.device.gemm_efficiency.end(),
                [](const auto& a, const auto& b) { return a.size < b.size; });
    }
  }
  c.intra_node = link_from_json(f.child("intra_node"), source, "intra_node");
  c.inter_node = f.has("inter_node") ? link_from_json(f.child("inter_node"), source, "inter_node") : c.intra_node;
  return c;
}

nlohmann::json cluster_to_json(const ClusterModel& c) {
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& p : c.device.gemm_efficiency) curve.push_back({p.size, p.efficiency});
  return {{"name", c.name},
          {"devices_per_node", c.devices_per_node},
          {"nodes", c.nodes},
          {"oversubscribe", c.oversubscribe},
          {"node_memory_gib", c.node_memory_bytes / kGiB},
          {"device",
           {{"name", c.device.name},
            {"peak_tflops", c.device.peak_flops / 1e12},
            {"peak_tflops_bf16", c.device.peak_flops_half / 1e12},
            {"memory_gib", c.device.memory_bytes / kGiB},
            {"memory_bandwidth_gb_s", c.device.memory_bandwidth / kGB},
            {"elementwise_passes", c.device.elementwise_passes},
            {"multi_unit_efficiency", c.device.multi_unit_efficiency},
            {"gemm_efficiency", curve}}},
          {"intra_node", link_to_json(c.intra_node)},
          {"inter_node", link_to_json(c.inter_node)}};
}

RankPlacement place_ranks(const ClusterModel& c, int world, int tp, int dp, int pp) {
  TESSERA_CHECK(world == tp * dp * pp, "world {} != tp {} x dp {} x pp {}", world, tp, dp, pp);
  RankPlacement r;
  if (c.oversubscribe) {
    // A CPU node: every rank on it (the runtime gives each cores / local ranks threads).
    const int nodes = c.nodes > 0 ? c.nodes : 1;
    r.ranks_per_node = (world + nodes - 1) / nodes;
    r.nodes = (world + r.ranks_per_node - 1) / r.ranks_per_node;
  } else {
    r.ranks_per_node = std::min(world, c.devices_per_node);
    r.nodes = (world + c.devices_per_node - 1) / c.devices_per_node;
    TESSERA_REQUIRE(c.nodes == 0 || r.nodes <= c.nodes, "{}: world {} needs {} nodes of {} devices, the cluster has {}",
                    c.source, world, r.nodes, c.devices_per_node, c.nodes);
  }
  r.units_per_rank = std::max(1, c.devices_per_node / r.ranks_per_node);
  r.oversubscription = std::max(1.0, static_cast<double>(r.ranks_per_node) / c.devices_per_node);
  // Groups are contiguous blocks of Megatron's rank order; one crosses a node boundary when
  // it spans more ranks than a node holds.
  const int R = r.ranks_per_node;
  r.tp_link = tp > R ? &c.inter_node : &c.intra_node;
  r.dp_link = tp * dp > R ? &c.inter_node : &c.intra_node;
  r.pp_link = world > R ? &c.inter_node : &c.intra_node;
  return r;
}

double CostModel::rank_peak_flops(int units) const {
  const DeviceModel& d = cluster_.device;
  const double peak = half_ && d.peak_flops_half > 0 ? d.peak_flops_half : d.peak_flops;
  return peak * units * (units > 1 ? d.multi_unit_efficiency : 1.0);
}

double CostModel::gemm_seconds(const Gemm& g, int units) const {
  if (g.flops() <= 0) return 0;
  const double size = std::cbrt(static_cast<double>(g.m) * g.n * g.k);
  return g.flops() / (rank_peak_flops(units) * cluster_.device.efficiency(size));
}

namespace {
double rank_bandwidth(const DeviceModel& d, int units) {
  return d.memory_bandwidth * units * (units > 1 ? d.multi_unit_efficiency : 1.0);
}
}  // namespace

double CostModel::forward_seconds(const ShardedLayer& l, int units) const {
  double t = 0;
  for (const Gemm& g : l.gemms) t += gemm_seconds(g, units);
  const double traffic = static_cast<double>(l.activation_bytes + l.output_bytes);
  return t + cluster_.device.elementwise_passes * traffic / rank_bandwidth(cluster_.device, units);
}

double CostModel::backward_seconds(const ShardedLayer& l, int units) const {
  double t = 0;
  for (const Gemm& g : l.gemms) t += 2.0 * gemm_seconds(g, units);  // dX and dW
  const double traffic = static_cast<double>(l.activation_bytes + l.output_bytes);
  return t + 2.0 * cluster_.device.elementwise_passes * traffic / rank_bandwidth(cluster_.device, units);
}

double CostModel::attention_recompute_seconds(const ShardedLayer& l, int units) const {
  if (l.attention_bytes == 0) return 0;
  double t = 0;
  for (const Gemm& g : l.gemms) {
    if (g.count > 1) t += gemm_seconds(g, units);  // the batched per-head products
  }
  return t + cluster_.device.elementwise_passes * l.attention_bytes / rank_bandwidth(cluster_.device, units);
}

double CostModel::optimizer_seconds(int64_t params, int units) const {
  return 36.0 * static_cast<double>(params) / rank_bandwidth(cluster_.device, units);
}

double CostModel::tp_seconds(const std::vector<TpCollective>& comm, int tp, const LinkModel& link) const {
  double t = 0;
  for (const auto& c : comm) t += link.collective_seconds(c.kind, static_cast<double>(c.bytes), tp);
  return t;
}

DeviceModel fit_gemm_curve(std::vector<GemmSample> samples, DeviceModel base) {
  TESSERA_CHECK(!samples.empty(), "no GEMM samples to fit");
  std::sort(samples.begin(), samples.end(), [](const auto& a, const auto& b) { return a.size < b.size; });
  double peak = 0;
  for (const auto& s : samples) peak = std::max(peak, s.flops);
  TESSERA_CHECK(peak > 0, "GEMM samples have no positive rate");
  base.peak_flops = peak;
  base.gemm_efficiency.clear();
  for (size_t i = 0; i < samples.size();) {
    size_t j = i;
    double log_size = 0, eff = 0;
    while (j < samples.size() && samples[j].size <= 1.5 * samples[i].size) {
      log_size += std::log(samples[j].size);
      eff += samples[j].flops / peak;
      ++j;
    }
    const double n = static_cast<double>(j - i);
    base.gemm_efficiency.push_back({std::exp(log_size / n), std::max(1e-4, eff / n)});
    i = j;
  }
  return base;
}

LinkModel fit_alpha_beta(const std::vector<MessageSample>& measured) {
  std::vector<MessageSample> samples;
  for (const MessageSample& s : measured) {
    auto same =
        std::find_if(samples.begin(), samples.end(), [&](const MessageSample& o) { return o.bytes == s.bytes; });
    if (same == samples.end()) {
      samples.push_back(s);
    } else {
      same->seconds = std::min(same->seconds, s.seconds);
    }
  }
  TESSERA_CHECK(samples.size() >= 2, "need at least 2 message sizes to fit alpha and beta, got {}", samples.size());
  // Weighted least squares on the relative error (weights 1 / t^2): message sizes span six
  // orders of magnitude, and a plain fit would only see the largest ones.
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& s : samples) {
    TESSERA_CHECK(s.seconds > 0, "message time {} must be positive", s.seconds);
    const double w = 1.0 / (s.seconds * s.seconds);
    sw += w;
    sx += w * s.bytes;
    sy += w * s.seconds;
    sxx += w * s.bytes * s.bytes;
    sxy += w * s.bytes * s.seconds;
  }
  const double den = sw * sxx - sx * sx;
  TESSERA_CHECK(den > 0, "message samples need at least two different sizes");
  double slope = (sw * sxy - sx * sy) / den;
  double alpha = (sy - slope * sx) / sw;
  if (alpha < 0) {  // refit through the origin
    alpha = 0;
    slope = sxy / sxx;
  }
  TESSERA_CHECK(slope > 0, "message times do not grow with size: cannot fit a bandwidth");
  return {alpha, 1.0 / slope};
}

double fit_elementwise_passes(const std::vector<LayerSample>& samples) {
  double num = 0, den = 0;
  for (const auto& s : samples) {
    num += (s.measured_s - s.gemm_s) * s.traffic_s;
    den += s.traffic_s * s.traffic_s;
  }
  if (den <= 0) return 3.0;
  return std::clamp(num / den, 0.5, 50.0);
}

}  // namespace tessera
