// Gradual pruning: an exact k-th-smallest selection over sharded weights by bisection on the
// bits of |w|, each probe one all-reduced count, so no rank ever holds another rank's weights.
#include "runtime/compression/gradual_prune.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/compression/magnitude_prune.h"
#include "runtime/compression/mask.h"

namespace tessera {
namespace {

// A non-negative float's bits order like the float, so |w| is selected as a uint32 key.
uint32_t magnitude_key(float w) {
  const float a = std::fabs(w);
  uint32_t bits;
  std::memcpy(&bits, &a, sizeof bits);
  return bits;
}

// FNV-1a: a name's place in the tie order, the same on every rank (std::hash need not be).
uint32_t name_hash(const std::string& name) {
  uint32_t h = 2166136261u;
  for (unsigned char ch : name) h = (h ^ ch) * 16777619u;
  return h;
}

// One tensor's entries on this rank. `counted` entries take part in the selection (a
// replicated tensor counts on tp rank 0 only, padding rows nowhere); the rule picked by the
// selection is applied to every entry but the padding, which always stays.
struct Entries {
  Parameter* param = nullptr;
  std::vector<uint32_t> key;
  std::vector<uint64_t> order;  // tie order: (name hash, global flat index)
  std::vector<char> counted, padding;
};

// Global flat index of each local entry: take_shard of the global index, carried in two F32
// tensors (i / 4096 and i % 4096) because a float holds integers exactly only up to 2^24.
std::vector<int64_t> global_indices(const Parameter& p, int tp_rank, int tp_size) {
  Tensor hi = Tensor::empty(p.global_shape), lo = Tensor::empty(p.global_shape);
  for (int64_t i = 0; i < hi.numel(); ++i) {
    hi.f32()[i] = static_cast<float>(i / 4096);
    lo.f32()[i] = static_cast<float>(i % 4096);
  }
  const Tensor h = take_shard(hi, p.shard, tp_rank, tp_size), l = take_shard(lo, p.shard, tp_rank, tp_size);
  std::vector<int64_t> out(h.numel());
  for (int64_t i = 0; i < h.numel(); ++i) {
    out[i] = static_cast<int64_t>(h.f32()[i]) * 4096 + static_cast<int64_t>(l.f32()[i]);
  }
  return out;
}

Entries entries_of(Parameter* p, const std::map<std::string, int64_t>& real_rows, const PruneGroups& g) {
  Entries e;
  e.param = p;
  const int64_t n = p->value.numel();
  const std::vector<int64_t> global = global_indices(*p, g.tp_rank, g.tp_size);
  const int64_t global_numel = shape_numel(p->global_shape);
  TESSERA_CHECK(global_numel < (int64_t{1} << 32), "{}: too large for the pruning tie order", p->name);
  const auto rows = real_rows.find(p->name);
  const int64_t row_width = p->global_shape.empty() ? 1 : global_numel / std::max<int64_t>(p->global_shape[0], 1);
  const bool replica = p->shard.kind == ShardSpec::Kind::Replicated && g.tp_rank != 0;
  const uint64_t hash = uint64_t{name_hash(p->name)} << 32;
  e.key.resize(n);
  e.order.resize(n);
  e.counted.resize(n);
  e.padding.resize(n);
  const float* w = p->value.f32();
  for (int64_t i = 0; i < n; ++i) {
    e.key[i] = magnitude_key(w[i]);
    e.order[i] = hash | static_cast<uint64_t>(global[i]);
    e.padding[i] = rows != real_rows.end() && global[i] / row_width >= rows->second;
    e.counted[i] = !e.padding[i] && !replica;
  }
  return e;
}

// Sum of a count over the given groups (all-reduced in I32: exact up to 2^31 entries).
int64_t sum_over(int64_t local, const std::vector<Communicator*>& comms) {
  Tensor t = Tensor::empty({1}, DType::I32);
  t.i32()[0] = static_cast<int32_t>(local);
  for (Communicator* c : comms) {
    if (c != nullptr && c->size() > 1) c->all_reduce(t, ReduceOp::Sum);
  }
  return t.i32()[0];
}

// The k-th smallest (key, order) among the counted entries of all ranks, as the pair
// (T, O): an entry is pruned when key < T, or key == T and order <= O. None for k = 0.
struct Cut {
  bool any = false;
  uint32_t key = 0;
  uint64_t order = 0;
  bool prunes(uint32_t k, uint64_t o) const { return any && (k < key || (k == key && o <= order)); }
};

template <class Pred>
int64_t count_where(const std::vector<Entries*>& es, const std::vector<Communicator*>& comms, Pred pred) {
  int64_t local = 0;
  for (const Entries* e : es) {
    for (size_t i = 0; i < e->key.size(); ++i) local += e->counted[i] && pred(e->key[i], e->order[i]);
  }
  return sum_over(local, comms);
}

Cut select_kth(const std::vector<Entries*>& es, const std::vector<Communicator*>& comms, int64_t k) {
  if (k == 0) return Cut{};
  // Smallest T with count(key <= T) >= k; every rank probes the same T, so the loops agree.
  uint32_t lo = 0, hi = 0x7f800000u;  // +inf: every finite |w| is below it
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (count_where(es, comms, [mid](uint32_t key, uint64_t) { return key <= mid; }) >= k) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  Cut cut{true, lo, std::numeric_limits<uint64_t>::max()};
  const int64_t below = count_where(es, comms, [lo](uint32_t key, uint64_t) { return key < lo; });
  const int64_t at = count_where(es, comms, [lo](uint32_t key, uint64_t) { return key == lo; });
  if (k - below == at) return cut;
  // Equal magnitudes at T: the earliest in the tie order go, which no layout changes.
  uint64_t olo = 0, ohi = std::numeric_limits<uint64_t>::max();
  while (olo < ohi) {
    const uint64_t mid = olo + (ohi - olo) / 2;
    const auto pred = [lo, mid](uint32_t key, uint64_t order) { return key == lo && order <= mid; };
    if (count_where(es, comms, pred) >= k - below) {
      ohi = mid;
    } else {
      olo = mid + 1;
    }
  }
  cut.order = olo;
  return cut;
}

int64_t apply_cut(Entries& e, const Cut& cut) {
  Parameter& p = *e.param;
  p.mask = Tensor::full(p.value.shape(), 1.f);
  float* m = p.mask.f32();
  int64_t pruned = 0;
  for (size_t i = 0; i < e.key.size(); ++i) {
    if (e.padding[i]) continue;
    if (cut.prunes(e.key[i], e.order[i])) {
      m[i] = 0.f;
      pruned += e.counted[i];
    }
  }
  apply_mask(p.value.f32(), m, p.value.numel());
  return pruned;
}

}  // namespace

bool is_prune_step(const PruneConfig& c, int64_t step) {
  return c.target_sparsity > 0 && step >= c.start_step && step <= c.end_step &&
         (step - c.start_step) % c.interval == 0;
}

double scheduled_sparsity(const PruneConfig& c, int64_t step) {
  if (step <= c.start_step) return 0;
  if (step >= c.end_step) return c.target_sparsity;
  const double left = 1.0 - static_cast<double>(step - c.start_step) / static_cast<double>(c.end_step - c.start_step);
  return c.target_sparsity * (1.0 - left * left * left);
}

PruneCounts prune_to_sparsity(const std::vector<Parameter*>& params, double sparsity, bool global_scope,
                              const std::map<std::string, int64_t>& real_rows, const PruneGroups& groups) {
  TESSERA_CHECK(sparsity >= 0 && sparsity < 1, "pruning sparsity {} is not in [0, 1)", sparsity);
  std::vector<Entries> all;
  for (Parameter* p : params) {
    if (is_prunable_weight(p->name, false)) all.push_back(entries_of(p, real_rows, groups));
  }
  const auto target = [sparsity](int64_t n) {
    return static_cast<int64_t>(std::llround(sparsity * static_cast<double>(n)));
  };
  const auto everything = [](uint32_t, uint64_t) { return true; };
  PruneCounts counts;
  if (global_scope) {
    const std::vector<Communicator*> comms{groups.tp, groups.pp};
    std::vector<Entries*> es;
    for (Entries& e : all) es.push_back(&e);
    counts.total = count_where(es, comms, everything);
    const Cut cut = select_kth(es, comms, target(counts.total));
    int64_t local = 0;
    for (Entries& e : all) local += apply_cut(e, cut);
    counts.pruned = sum_over(local, comms);
    return counts;
  }
  const std::vector<Communicator*> comms{groups.tp};
  for (Entries& e : all) {
    const int64_t n = count_where({&e}, comms, everything);
    counts.total += n;
    counts.pruned += sum_over(apply_cut(e, select_kth({&e}, comms, target(n))), comms);
  }
  // The other stages' tensors, for the totals only.
  return {sum_over(counts.pruned, {groups.pp}), sum_over(counts.total, {groups.pp})};
}

}  // namespace tessera
