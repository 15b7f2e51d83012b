// The cost model: how long a layer's compute, a collective or a pipeline message takes on a
// described cluster. Compute is FLOPs over an achieved FLOP rate that depends on the GEMM size
// (a calibrated efficiency curve) plus the memory traffic of the element-wise ops; communication
// is an alpha-beta model per link type (inside a node, between nodes). Clusters are read from
// JSON (the launcher turns configs/clusters/*.yaml and the calibration cache into JSON).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "partitioner/tp_sharding.h"

namespace tessera {

// Fraction of peak a GEMM reaches, by its size n = cbrt(m * n * k) (one product of a batch).
struct EfficiencyPoint {
  double size = 0;
  double efficiency = 0;
};

// One compute unit: a GPU, or one CPU core. A rank that owns several units (CPU threads) gets
// units * multi_unit_efficiency of one unit's rates.
struct DeviceModel {
  std::string name;
  double peak_flops = 0;        // fp32 FLOP/s of one unit (what the CPU runtime trains in)
  double peak_flops_half = 0;   // bf16/fp16 dense FLOP/s (tensor cores); 0: same as peak_flops
  std::vector<EfficiencyPoint> gemm_efficiency;  // sorted by size; interpolated in log(size)
  double memory_bandwidth = 0;  // bytes/s one unit streams (HBM, or DRAM for a core)
  double memory_bytes = 0;      // memory of one unit (GPU) or of the node (CPU, shared by ranks)
  // Bytes the element-wise ops (LayerNorm, GELU, softmax, residuals, bias) move per byte of
  // activations a layer saves or outputs: forward touches each about this often, backward twice
  // that. Fitted by --calibrate from measured layer times; ~3 (write, read, read) by default.
  double elementwise_passes = 3.0;
  double multi_unit_efficiency = 1.0;  // CPU thread scaling (measured GEMM with all cores)

  // Interpolated efficiency (clamped to the table's ends); 1 when the table is empty.
  double efficiency(double gemm_size) const;
};

// Alpha-beta link: a message of b bytes takes alpha + b / bandwidth.
struct LinkModel {
  double alpha_s = 0;    // latency per message, seconds
  double bandwidth = 0;  // bytes/s per direction, as a ring collective sees it (bus bandwidth)

  double p2p_seconds(double bytes) const;
  // Ring algorithms over n ranks; bytes is the full buffer on each rank.
  // all-reduce: 2 (n-1)/n * bytes / beta + 2 (n-1) alpha.
  double all_reduce_seconds(double bytes, int n) const;
  // all-gather and reduce-scatter: (n-1)/n * bytes / beta + (n-1) alpha.
  double all_gather_seconds(double bytes, int n) const;
  double reduce_scatter_seconds(double bytes, int n) const { return all_gather_seconds(bytes, n); }
  double collective_seconds(CollectiveKind kind, double bytes, int n) const;
};

struct ClusterModel {
  std::string name;
  std::string source;             // file it came from, for messages
  DeviceModel device;
  int devices_per_node = 1;       // compute units per node: GPUs, or CPU cores
  int nodes = 0;                  // 0: as many as a layout needs
  bool oversubscribe = false;     // CPU: more ranks than cores on one node share the cores
  double node_memory_bytes = 0;   // CPU: RAM of the node (the per-rank cap divides it)
  LinkModel intra_node, inter_node;
};

// {"name", "devices_per_node", "nodes", "oversubscribe", "node_memory_gib",
//  "device": {"name", "peak_tflops", "peak_tflops_bf16", "memory_gib", "memory_bandwidth_gb_s",
//             "elementwise_passes", "multi_unit_efficiency", "gemm_efficiency": [[size, eff], ...]},
//  "intra_node": {"latency_us", "bandwidth_gb_s"}, "inter_node": {...}}. GB = 1e9 bytes.
// Unknown keys and missing required ones throw InputError naming source and key.
ClusterModel cluster_from_json(const nlohmann::json& j, const std::string& source);
nlohmann::json cluster_to_json(const ClusterModel& cluster);

// Where a layout's ranks land (Megatron order: tp ranks adjacent, then dp, then pp) and what
// each group's collectives run over.
struct RankPlacement {
  int ranks_per_node = 1;
  int nodes = 1;
  int units_per_rank = 1;     // CPU threads per rank (the runtime's cores / local ranks)
  double oversubscription = 1;  // ranks per node / units per node when > 1 (CPU only)
  const LinkModel* tp_link = nullptr;
  const LinkModel* dp_link = nullptr;
  const LinkModel* pp_link = nullptr;
};

// Throws InputError when the cluster is too small for world ranks.
RankPlacement place_ranks(const ClusterModel& cluster, int world, int tp, int dp, int pp);

// Compute and communication times on one cluster.
class CostModel {
 public:
  // half_precision: compute at the device's bf16/fp16 peak (train.precision bf16 or fp16).
  explicit CostModel(ClusterModel cluster, bool half_precision = false)
      : cluster_(std::move(cluster)), half_(half_precision) {}
  const ClusterModel& cluster() const { return cluster_; }
  bool half_precision() const { return half_; }

  // Peak FLOP/s of a rank with `units` compute units (the MFU denominator).
  double rank_peak_flops(int units) const;
  double gemm_seconds(const Gemm& gemm, int units) const;
  // Compute only (no tp communication): GEMMs at their achieved rate plus element-wise traffic.
  double forward_seconds(const ShardedLayer& layer, int units) const;
  double backward_seconds(const ShardedLayer& layer, int units) const;
  // Selective recompute repeats the attention core: its GEMMs and the probs traffic.
  double attention_recompute_seconds(const ShardedLayer& layer, int units) const;
  // AdamW over `params` fp32 values: zero_grad, the norm, and the update stream ~36 bytes each.
  double optimizer_seconds(int64_t params, int units) const;
  // The tp collectives of one layer's forward or backward, back to back.
  double tp_seconds(const std::vector<TpCollective>& comm, int tp, const LinkModel& link) const;

 private:
  ClusterModel cluster_;
  bool half_ = false;
};

// Fitting calibration measurements (the launcher measures; the fits live here).
struct GemmSample {
  double size = 0;   // cbrt(m * n * k) of the measured GEMM
  double flops = 0;  // achieved FLOP/s
};
// peak = the best sample; the curve = sample / peak by size, samples within a factor 1.5 of
// size averaged into one point (shapes of one size differ; the curve keeps their mean).
DeviceModel fit_gemm_curve(std::vector<GemmSample> samples, DeviceModel base);

struct MessageSample {
  double bytes = 0;
  double seconds = 0;
};
// Line seconds = alpha + bytes / bandwidth, least squares on the relative error (alpha >= 0).
// Of several samples of one size only the fastest counts: a slower trial waited for a peer
// the OS had descheduled, which is the machine's load, not the link.
LinkModel fit_alpha_beta(const std::vector<MessageSample>& samples);

// Fits DeviceModel::elementwise_passes from measured layer times (forward + backward): the
// least-squares k in measured = gemm_time + k * traffic_time. Clamped to [0.5, 50].
struct LayerSample {
  double measured_s = 0;
  double gemm_s = 0;        // predicted GEMM time of the same forward + backward
  double traffic_s = 0;     // predicted time of one pass over its bytes (fwd 1 + bwd 2)
};
double fit_elementwise_passes(const std::vector<LayerSample>& samples);

}  // namespace tessera
