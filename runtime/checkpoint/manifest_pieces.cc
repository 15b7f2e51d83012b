// Manifest piece rules: whole tp pieces and dp-sharded parts.
#include "runtime/checkpoint/manifest_pieces.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace tessera {
namespace {

std::string ranges_string(const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  std::string s = "[";
  for (size_t i = 0; i < ranges.size(); ++i) {
    s += fmt::format("{}[{}, {})", i ? ", " : "", ranges[i].first, ranges[i].second);
  }
  return s + "]";
}

// A dp-sharded tensor's parts must cover each tp piece exactly once: the first element range
// that no part holds (or that two hold) is named.
void check_coverage(const TensorEntry& t, int tp_pieces, const std::string& where) {
  std::map<int, std::vector<std::pair<int64_t, int64_t>>> parts;
  for (const ShardPiece& p : t.pieces) parts[p.tp_rank].push_back(*p.elements);
  for (int r = 0; r < tp_pieces; ++r) {
    const int64_t numel = t.pieces.empty() ? 0 : shape_numel(t.pieces.front().shape);
    std::vector<std::pair<int64_t, int64_t>>& ranges = parts[r];
    std::sort(ranges.begin(), ranges.end());
    int64_t next = 0;
    for (const auto& range : ranges) {
      TESSERA_REQUIRE(range.first >= next, "{}: elements {} of tp rank {} are saved twice", where,
                      element_range_string({range.first, std::min(next, range.second)}), r);
      TESSERA_REQUIRE(range.first == next, "{}: elements {} of tp rank {} are in no shard file", where,
                      element_range_string({next, range.first}), r);
      next = range.second;
    }
    TESSERA_REQUIRE(next == numel, "{}: elements {} of tp rank {} are in no shard file", where,
                    element_range_string({next, numel}), r);
  }
}

}  // namespace

void check_pieces(const TensorEntry& t, const CheckpointLayout& layout,
                  const std::map<std::string, ShardFileEntry>& files, const std::string& where) {
  const bool split = t.shard.kind == ShardSpec::Kind::Split;
  const size_t expected = split ? static_cast<size_t>(layout.tp) : 1;
  const bool sharded = !t.pieces.empty() && t.pieces.front().elements.has_value();
  TESSERA_REQUIRE(sharded || t.pieces.size() == expected, "{}: has {} pieces; a {} tensor saved under tp {} has {}",
                  where, t.pieces.size(), shard_spec_string(t.shard), layout.tp, expected);
  const Shape want = split ? shard_shape(t.global_shape, t.shard, layout.tp) : t.global_shape;
  for (size_t j = 0; j < t.pieces.size(); ++j) {
    const ShardPiece& p = t.pieces[j];
    const std::string pw = fmt::format("{} pieces[{}]", where, j);
    TESSERA_REQUIRE(p.elements.has_value() == sharded, "{} mixes dp-sharded pieces (with \"elements\") and whole ones",
                    pw);
    TESSERA_REQUIRE(sharded || !split || p.tp_rank == static_cast<int>(j), "{} has tp_rank {}, expected {}", pw,
                    p.tp_rank, j);
    TESSERA_REQUIRE(split || p.tp_rank == 0, "{} has tp_rank {}; a replicated tensor is in tp rank 0's files", pw,
                    p.tp_rank);
    const auto file = files.find(p.file);
    TESSERA_REQUIRE(file != files.end(), "{} names file \"{}\", which is not in \"files\"", pw, p.file);
    TESSERA_REQUIRE(file->second.tp_rank == p.tp_rank && file->second.pp_rank == t.pp_rank,
                    "{} is in \"{}\", which holds tp rank {} of pp stage {}, not tp rank {} of pp stage {}",
                    pw, p.file, file->second.tp_rank, file->second.pp_rank, p.tp_rank, t.pp_rank);
    TESSERA_REQUIRE((file->second.dp_rank >= 0) == sharded, "{} is {}dp-sharded, but \"{}\" is {}a dp-sharded file",
                    pw, sharded ? "" : "not ", p.file, sharded ? "not " : "");
    TESSERA_REQUIRE(p.shape == want, "{} has shape {}, but a {} shard of {} under tp {} is {}", pw,
                    shape_string(p.shape), shard_spec_string(t.shard), shape_string(t.global_shape),
                    layout.tp, shape_string(want));
    const auto ranges = split ? shard_ranges(t.global_shape, t.shard, p.tp_rank, layout.tp)
                              : std::vector<std::pair<int64_t, int64_t>>{};
    TESSERA_REQUIRE(p.ranges == ranges, "{} has ranges {} along axis {}, but tp rank {} of {} holds {}", pw,
                    ranges_string(p.ranges), t.shard.axis, p.tp_rank, layout.tp, ranges_string(ranges));
    if (sharded) {
      const auto [b, e] = *p.elements;
      TESSERA_REQUIRE(b < e && e <= shape_numel(want), "{} has elements {}, not a range of the {} elements of {}", pw,
                      element_range_string(*p.elements), shape_numel(want), shape_string(want));
    }
  }
  if (sharded) check_coverage(t, static_cast<int>(expected), where);
}

}  // namespace tessera
