// Memory model: per-rank bytes by kind, following what the runtime allocates.
#include "partitioner/memory_model.h"

#include <algorithm>
#include <fmt/format.h>

#include "core/error.h"
#include "partitioner/zero_model.h"

namespace tessera {
namespace {
constexpr int64_t kF32 = 4, kHalf = 2;

// The parameters, gradients, optimizer state, gathered units and gradient bucket of a rank
// holding `params` parameters whose largest unit (layer) has `max_unit` of them: one rule for
// stage_memory and RangeMemory.
struct StateBytes {
  int64_t params = 0, grads = 0, optimizer = 0, gathered = 0, bucket = 0;
};

// A head tied to the embedding on a rank: with the embedding on the same rank the table is
// shared (ZeRO-2/3 gather it with the head and keep its gradient over the whole backward);
// without it the head holds a copy (parameters, gradients and moments like any other). Both
// are units of their own at ZeRO-2/3 (runtime/train/zero_units.h).
struct TiedTable {
  int64_t copy = 0, shared = 0;
};

TiedTable tied_table(const std::vector<ShardedLayer>& layers, bool has_embedding, bool has_head) {
  TiedTable t;
  const int64_t table = layers.empty() ? 0 : layers.back().tied_params;
  if (!has_head || table == 0) return t;
  (has_embedding ? t.shared : t.copy) = table;
  return t;
}

// The parameters and the largest unit of a rank, with its tied table's copy.
void add_tied_copy(const TiedTable& t, int64_t& params, int64_t& max_unit) {
  params += t.copy;
  max_unit = std::max(max_unit, t.copy);
}

// `head`: the parameters of the rank's head, gathered together with a shared table.
StateBytes state_bytes(int64_t params, int64_t max_unit, const MemoryOptions& o, const TiedTable& tied = {},
                       int64_t head = 0) {
  const int stage = o.dp > 1 ? o.zero_stage : 0;
  const int64_t slice = (params + o.dp - 1) / o.dp;
  StateBytes s;
  // Weights as the runtime holds them: fp32 masters (updated in place by the optimizer) plus,
  // with mixed precision, their 16-bit GEMM copies (Parameter::compute_copy); ZeRO-3 keeps only
  // the masters' 1/dp shard at rest and makes the copies per gathered unit (below).
  s.params = stage == 3 ? kF32 * slice : (kF32 + (o.mixed_precision ? kHalf : 0)) * params;
  // fp32 gradients (Megatron's main_grad with mixed precision). ZeRO-1 reduce-scatters the
  // full gradient into a separate 1/dp slice; ZeRO-2/3 keep only the slice between units, plus
  // the unit whose gradient is being computed and the one being reduce-scattered with its
  // received 1/dp block (ZeroUnits' `reduced`, summed into the slice when the scatter lands).
  const int64_t two_units = std::min(params, 2 * max_unit);
  const int64_t received = (std::min(params, max_unit) + o.dp - 1) / o.dp;
  s.grads = kF32 * (stage == 0   ? params
                    : stage == 1 ? params + slice
                                 : slice + two_units + received + tied.shared);
  // AdamW's two fp32 moments, for the rank's 1/dp slice only with ZeRO.
  s.optimizer = 2 * kF32 * (stage >= 1 ? slice : params);
  // ZeRO-3: the unit computing, widened to fp32 (+ its 16-bit GEMM copies with mixed
  // precision), and the prefetched ones in flight in the gather precision.
  if (stage == 3) {
    const int64_t computing = std::min(params, std::max(max_unit, tied.shared > 0 ? head + tied.shared : 0));
    const int64_t prefetched = std::min(params - computing, std::max(0, o.zero_prefetch) * max_unit);
    s.gathered = (kF32 + (o.mixed_precision ? kHalf : 0)) * computing +
                 gather_element_bytes(o.mixed_precision) * prefetched;
  }
  // Without ZeRO, one gradient bucket is being all-reduced; with bf16 reduction each bucket's
  // bf16 copy lives until its all-reduce lands, and the last backward can launch them faster
  // than the link drains them: all of them at worst (measured at dp 2: 6-12 of these 12 MiB,
  // varying run to run). ZeRO-1 with bf16 reduction rounds the whole gradient and its received
  // slice to bf16 (grad_sync.cc).
  if (o.dp > 1 && stage == 0) {
    s.bucket = std::min<int64_t>(static_cast<int64_t>(o.bucket_bytes), kF32 * params);
    if (o.bf16_grad_reduce) s.bucket += kHalf * params;
  }
  if (o.dp > 1 && stage == 1 && o.bf16_grad_reduce) s.bucket = kHalf * (params + slice);
  return s;
}

}  // namespace

Recompute parse_recompute(const std::string& name) {
  if (name == "none") return Recompute::None;
  if (name == "selective") return Recompute::Selective;
  if (name == "full") return Recompute::Full;
  TESSERA_REQUIRE(false, "recompute '{}' must be none, selective or full", name);
  return Recompute::None;
}

std::string recompute_name(Recompute r) {
  switch (r) {
    case Recompute::None: return "none";
    case Recompute::Selective: return "selective";
    case Recompute::Full: return "full";
  }
  return "?";
}

nlohmann::json to_json(const MemoryBreakdown& m) {
  return {{"params", m.params},         {"grads", m.grads},
          {"optimizer", m.optimizer},   {"gathered", m.gathered},
          {"activations", m.activations},
          {"workspace", m.workspace},   {"comm_buffers", m.comm_buffers},
          {"in_flight", m.in_flight},   {"total", m.total()}};
}

MemoryBreakdown memory_from_json(const nlohmann::json& j) {
  MemoryBreakdown m;
  m.params = j.at("params").get<int64_t>();
  m.grads = j.at("grads").get<int64_t>();
  m.optimizer = j.at("optimizer").get<int64_t>();
  m.gathered = j.value("gathered", int64_t{0});  // plans written before ZeRO-3 have none
  m.activations = j.at("activations").get<int64_t>();
  m.workspace = j.at("workspace").get<int64_t>();
  m.comm_buffers = j.at("comm_buffers").get<int64_t>();
  m.in_flight = j.at("in_flight").get<int>();
  return m;
}

int64_t chunk_saved_bytes(const std::vector<ShardedLayer>& layers, LayerRange c, Recompute r) {
  TESSERA_CHECK(0 <= c.first && c.first < c.last && c.last <= static_cast<int>(layers.size()),
                "bad layer range [{}, {})", c.first, c.last);
  // Full recompute: only the chunk's input survives until the backward reruns the forward.
  if (r == Recompute::Full) return layers[c.first].input_bytes;
  int64_t bytes = 0;
  for (int i = c.first; i < c.last; ++i) {
    bytes += layers[i].activation_bytes;
    // Selective: the softmax probabilities (B * heads * T^2) are recomputed, not kept.
    if (r == Recompute::Selective) bytes -= layers[i].attention_bytes;
  }
  return bytes;
}

int64_t chunk_workspace_bytes(const std::vector<ShardedLayer>& layers, LayerRange c, Recompute r) {
  int64_t largest = 0, chunk = 0;
  for (int i = c.first; i < c.last; ++i) {
    const ShardedLayer& l = layers[i];
    // A backward allocates the gradients of what it saved (about as many bytes) while the
    // incoming gradient (the size of its output) and its input gradient are alive.
    largest = std::max(largest, l.activation_bytes + l.output_bytes + l.input_bytes);
    chunk += l.activation_bytes;
  }
  // Full recompute (runtime/pipeline/stage_executor.cc): the backward first reruns the whole
  // chunk's forward from the kept input, saving everything, so one microbatch's full
  // activations of the chunk are alive on top of the backward transient.
  return r == Recompute::Full ? chunk + largest : largest;
}

int64_t peak_saved_bytes(const std::vector<int64_t>& saved, int stage, const MemoryOptions& o, int* in_flight) {
  TESSERA_CHECK(static_cast<int>(saved.size()) == o.virtual_stages, "{} chunk sizes for {} virtual stages",
                saved.size(), o.virtual_stages);
  if (o.virtual_stages == 1) {
    // GPipe: all m microbatches forward before any backward; 1F1B: rank s warms up with
    // p - s - 1 forwards, so at most min(p - s, m) are in flight (stage 0 holds p).
    const int n = expected_peak_in_flight(o.schedule, stage, o.pp, o.microbatches, 1);
    if (in_flight) *in_flight = n;
    return n * saved[0];
  }
  // Interleaved: walk the schedule itself. Megatron's bound is warm-up + 1 microbatch-chunks,
  // (p - s - 1) * 2 + (v - 1) * p + 1, but which chunks those are depends on the order.
  int64_t cur = 0, peak = 0;
  int n = 0, peak_n = 0;
  for (const Action& a : make_schedule(o.schedule, stage, o.pp, o.microbatches, o.virtual_stages)) {
    if (a.kind == ActionKind::Forward) {
      cur += saved[a.chunk];
      ++n;
      if (cur > peak) {
        peak = cur;
        peak_n = n;
      }
    } else if (a.kind == ActionKind::Backward) {
      cur -= saved[a.chunk];
      --n;
    }
  }
  if (in_flight) *in_flight = peak_n;
  return peak;
}

MemoryBreakdown stage_memory(const std::vector<ShardedLayer>& layers, const std::vector<LayerRange>& chunks,
                             int stage, const MemoryOptions& o) {
  MemoryBreakdown m;
  int64_t params = 0, max_unit = 0, workspace = 0, boundary = 0;
  std::vector<int64_t> saved;
  for (const LayerRange& c : chunks) {
    for (int i = c.first; i < c.last; ++i) {
      params += layers[i].params;
      max_unit = std::max(max_unit, layers[i].params);
    }
    saved.push_back(chunk_saved_bytes(layers, c, o.recompute));
    workspace = std::max(workspace, chunk_workspace_bytes(layers, c, o.recompute));
    boundary = std::max({boundary, layers[c.first].input_bytes, layers[c.last - 1].output_bytes});
  }
  const auto holds = [&](int layer) {
    return std::any_of(chunks.begin(), chunks.end(), [&](const LayerRange& c) { return c.first <= layer && layer < c.last; });
  };
  const TiedTable tied = tied_table(layers, holds(0), holds(static_cast<int>(layers.size()) - 1));
  add_tied_copy(tied, params, max_unit);
  const StateBytes state = state_bytes(params, max_unit, o, tied, layers.empty() ? 0 : layers.back().params);
  m.params = state.params;
  m.grads = state.grads;
  m.optimizer = state.optimizer;
  m.gathered = state.gathered;
  m.activations = peak_saved_bytes(saved, stage, o, &m.in_flight);
  m.workspace = workspace;
  // Communication in flight: a gradient bucket (dp without ZeRO), and an activation and a
  // gradient message on each side of a pipeline stage.
  m.comm_buffers = state.bucket;
  if (o.pp > 1) m.comm_buffers += 2 * boundary;
  return m;
}

namespace {
std::vector<int64_t> per_layer(const std::vector<ShardedLayer>& layers, int64_t (*f)(const ShardedLayer&)) {
  std::vector<int64_t> v;
  for (const auto& l : layers) v.push_back(f(l));
  return v;
}
}  // namespace

RangeMemory::RangeMax::RangeMax(std::vector<int64_t> values) {
  levels.push_back(std::move(values));
  for (size_t w = 1; 2 * w <= levels[0].size(); w *= 2) {
    const auto& prev = levels.back();
    std::vector<int64_t> next(prev.size() - w);
    for (size_t i = 0; i < next.size(); ++i) next[i] = std::max(prev[i], prev[i + w]);
    levels.push_back(std::move(next));
  }
}

int64_t RangeMemory::RangeMax::operator()(int first, int last) const {
  int k = 0;
  while ((2 << k) <= last - first) ++k;
  return std::max(levels[k][first], levels[k][last - (1 << k)]);
}

RangeMemory::RangeMemory(const std::vector<ShardedLayer>& layers, const MemoryOptions& o)
    : layers_(layers),
      o_(o),
      params_(layers.size() + 1, 0),
      saved_(layers.size() + 1, 0),
      activations_(layers.size() + 1, 0),
      transient_(per_layer(layers, [](const ShardedLayer& l) { return l.activation_bytes + l.output_bytes + l.input_bytes; })),
      unit_params_(per_layer(layers, [](const ShardedLayer& l) { return l.params; })) {
  TESSERA_CHECK(o.virtual_stages == 1, "RangeMemory is for one chunk per stage, not {}", o.virtual_stages);
  for (size_t i = 0; i < layers.size(); ++i) {
    params_[i + 1] = params_[i] + layers[i].params;
    saved_[i + 1] = saved_[i] + chunk_saved_bytes(layers, {static_cast<int>(i), static_cast<int>(i) + 1}, o.recompute);
    activations_[i + 1] = activations_[i] + layers[i].activation_bytes;
  }
  for (int s = 0; s < o.pp; ++s) in_flight_.push_back(expected_peak_in_flight(o.schedule, s, o.pp, o.microbatches, 1));
}

int64_t RangeMemory::total(int stage, int first, int last) const {
  int64_t params = params_[last] - params_[first], max_unit = unit_params_(first, last);
  const int64_t saved = o_.recompute == Recompute::Full ? layers_[first].input_bytes : saved_[last] - saved_[first];
  // The same terms as stage_memory, from prefix sums and range maxima.
  const TiedTable tied = tied_table(layers_, first == 0, last == static_cast<int>(layers_.size()));
  add_tied_copy(tied, params, max_unit);
  const StateBytes state = state_bytes(params, max_unit, o_, tied, layers_.back().params);
  int64_t total = state.params + state.grads + state.optimizer + state.gathered + state.bucket;
  int64_t workspace = transient_(first, last);
  if (o_.recompute == Recompute::Full) workspace += activations_[last] - activations_[first];
  total += in_flight_[stage] * saved + workspace;
  if (o_.pp > 1) total += 2 * std::max(layers_[first].input_bytes, layers_[last - 1].output_bytes);
  return total;
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) {
    b /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.1f} {}", b, units[u]);
}

}  // namespace tessera
