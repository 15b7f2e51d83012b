// Finding the newest complete checkpoint and loading one under any layout.
#include <algorithm>
#include <cstring>
#include <filesystem>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/durable_file.h"

namespace tessera {
namespace fs = std::filesystem;

namespace {

// step_<N> (digits only) -> N.
std::optional<int64_t> step_of(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() == 5 || name.size() > 5 + 18) return std::nullopt;
  const std::string digits = name.substr(5);
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!std::all_of(digits.begin(), digits.end(), is_digit)) return std::nullopt;
  return std::stoll(digits);
}

struct StepDir {
  int64_t step;
  fs::path path;
  bool complete;
};

std::vector<StepDir> scan(const fs::path& dir) {
  std::vector<StepDir> found;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_directory()) continue;
    const auto step = step_of(e.path().filename().string());
    if (step) found.push_back({*step, e.path(), fs::is_regular_file(e.path() / kManifestFile)});
  }
  std::sort(found.begin(), found.end(), [](const StepDir& a, const StepDir& b) { return a.step < b.step; });
  return found;
}

}  // namespace

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  for (const StepDir& s : scan(dir)) {
    if (s.complete) out.emplace_back(s.step, s.path.string());
  }
  return out;
}

std::optional<std::string> find_latest_checkpoint(const std::string& dir,
                                                  std::vector<std::string>* warnings) {
  const auto warn = [&](std::string w) {
    if (warnings) warnings->push_back(std::move(w));
  };
  if (!fs::is_directory(dir)) return std::nullopt;
  const std::vector<StepDir> dirs = scan(dir);
  const StepDir* newest = nullptr;
  for (const StepDir& s : dirs) {
    if (s.complete) {
      newest = &s;
    } else {
      warn(fmt::format("{}: no {} (a save or removal that did not finish); ignored", s.path.string(),
                       kManifestFile));
    }
  }
  const fs::path latest = fs::path(dir) / kLatestFile;
  if (fs::exists(latest)) {
    std::string text;
    try {
      text = checkpoint_io::read_small_file(latest.string(), 4096);
    } catch (const InputError& e) {
      warn(e.what());
    }
    text.erase(text.find_last_not_of(" \n\r\t") + 1);
    const auto step = step_of(text);
    const auto named = std::find_if(dirs.begin(), dirs.end(), [&](const StepDir& s) {
      return step && s.step == *step && s.path.filename() == text && s.complete;
    });
    if (named != dirs.end()) {
      if (newest->step > named->step) {
        warn(
            fmt::format("{} is complete but newer than {} (the save stopped before `latest` was "
                        "replaced); resuming from {}",
                        newest->path.string(), latest.string(), text));
      }
      return named->path.string();
    }
    if (newest) {
      warn(fmt::format("{} names \"{}\", which is not a complete checkpoint; using {}", latest.string(), text,
                       newest->path.string()));
    }
  } else if (newest) {
    warn(fmt::format("{} is missing; using the newest complete checkpoint {}", latest.string(),
                     newest->path.string()));
  }
  if (!newest) return std::nullopt;
  return newest->path.string();
}

Tensor resize_padded_rows(const Tensor& global, const Shape& shape, int64_t rows) {
  Tensor out = Tensor::zeros(shape, global.dtype());
  const int64_t copy = std::min({rows, global.dim(0), shape[0]});
  const size_t row_bytes = global.dim(0) == 0 ? 0 : global.nbytes() / static_cast<size_t>(global.dim(0));
  if (copy > 0) std::memcpy(out.data<char>(), global.data<char>(), static_cast<size_t>(copy) * row_bytes);
  return out;
}

CheckpointReader::CheckpointReader(std::string step_dir)
    : step_dir_(std::move(step_dir)), manifest_(read_manifest(step_dir_)) {}

Tensor CheckpointReader::read_piece(const ShardPiece& piece, const std::string& key) {
  const std::string path = (fs::path(step_dir_) / piece.file).string();
  auto it = files_.find(piece.file);
  if (it == files_.end()) {
    const auto entry = std::find_if(manifest_.files.begin(), manifest_.files.end(),
                                    [&](const ShardFileEntry& f) { return f.name == piece.file; });
    std::error_code ec;
    const uintmax_t bytes = fs::file_size(path, ec);
    TESSERA_REQUIRE(!ec, "{}: cannot read: {} (listed in {})", path, ec.message(), manifest_.path);
    // A cheap check before parsing: a truncated or replaced shard shows up here.
    TESSERA_REQUIRE(bytes == entry->bytes, "{}: is {} bytes, but {} records {}", path, bytes, manifest_.path,
                    entry->bytes);
    it = files_.emplace(piece.file, SafetensorsReader(path)).first;
  }
  TESSERA_REQUIRE(it->second.contains(key), "{}: has no tensor '{}', which {} lists", path, key, manifest_.path);
  Tensor t = it->second.read(key);
  // A dp-sharded part is saved flat.
  const Shape want = piece.elements ? Shape{piece.elements->second - piece.elements->first} : piece.shape;
  TESSERA_REQUIRE(t.shape() == want, "{}: tensor '{}' has shape {}, but {} says {}", path, key,
                  shape_string(t.shape()), manifest_.path, shape_string(want));
  return t;
}

Tensor CheckpointReader::piece(const TensorEntry& entry, size_t index, const std::string& key) {
  const ShardPiece& p = entry.pieces.at(index);
  Tensor t;
  try {
    t = read_piece(p, key);
  } catch (const InputError& e) {
    if (!p.elements) throw;
    // The manifest proved that the parts cover the tensor: a part that cannot be read leaves
    // exactly its range uncovered.
    throw InputError(fmt::format("{}: parameter '{}' elements {} of tp rank {} are not covered: {}", step_dir_,
                                 entry.name, element_range_string(*p.elements), p.tp_rank, e.what()));
  }
  TESSERA_REQUIRE(t.dtype() == entry.dtype, "{}: tensor '{}' is {}, but {} says {}",
                  (fs::path(step_dir_) / p.file).string(), key, dtype_name(t.dtype()), manifest_.path,
                  dtype_name(entry.dtype));
  return t;
}

void CheckpointReader::check_prefix(const TensorEntry& entry, const std::string& prefix) const {
  if (prefix == "mask") {
    TESSERA_REQUIRE(entry.masked, "{}: tensor '{}' has no pruning mask", manifest_.path, entry.name);
    return;
  }
  TESSERA_REQUIRE(prefix == "param" || std::find(manifest_.moments.begin(), manifest_.moments.end(),
                                                 prefix) != manifest_.moments.end(),
                  "{}: has no optimizer moments \"{}\" (saved weights only)", manifest_.path, prefix);
}

Tensor CheckpointReader::local_piece(const TensorEntry& entry, const std::string& prefix, int tp_rank) {
  check_prefix(entry, prefix);
  const std::string key = prefix + "." + entry.name;
  // Every part is read and checked against its file before the piece is allocated, so a
  // corrupt manifest cannot make us allocate more than the files hold.
  std::vector<size_t> parts;
  std::vector<Tensor> saved;
  for (size_t j = 0; j < entry.pieces.size(); ++j) {
    if (entry.pieces[j].tp_rank != tp_rank) continue;
    parts.push_back(j);
    saved.push_back(piece(entry, j, key));
  }
  TESSERA_CHECK(!parts.empty(), "{}: tensor '{}' has no piece of tp rank {}", manifest_.path, entry.name, tp_rank);
  const ShardPiece& first = entry.pieces[parts.front()];
  if (!first.elements) return saved.front();  // read for this call: owned by nobody else
  Tensor out = Tensor::empty(first.shape, entry.dtype);
  Tensor flat = out.view({out.numel()});
  for (size_t k = 0; k < parts.size(); ++k) {
    const auto [b, e] = *entry.pieces[parts[k]].elements;
    flat.narrow(b, e - b).copy_from(saved[k]);
  }
  return out;
}

Tensor CheckpointReader::global(const TensorEntry& entry, const std::string& prefix) {
  if (entry.shard.kind == ShardSpec::Kind::Replicated) return local_piece(entry, prefix, 0);
  std::vector<Tensor> pieces;
  for (int r = 0; r < manifest_.layout.tp; ++r) pieces.push_back(local_piece(entry, prefix, r));
  Tensor global = Tensor::empty(entry.global_shape, entry.dtype);
  for (size_t r = 0; r < pieces.size(); ++r) {
    place_shard(global, pieces[r], entry.shard, static_cast<int>(r), manifest_.layout.tp);
  }
  return global;
}

int64_t load_checkpoint(const std::string& step_dir, CheckpointState& state, int tp_rank, int tp_size) {
  CheckpointReader reader(step_dir);
  const Manifest& m = reader.manifest();
  TESSERA_CHECK(state.moments.empty() || state.moments.size() == state.params.size(),
                "{} moments for {} parameters", state.moments.size(), state.params.size());
  for (size_t i = 0; i < state.params.size(); ++i) {
    Parameter& p = *state.params[i];
    const TensorEntry* e = m.find(p.name);
    TESSERA_REQUIRE(e != nullptr, "{}: has no tensor '{}', which the model has", m.path, p.name);
    TESSERA_REQUIRE(e->dtype == p.value.dtype(), "{}: tensor '{}' is {}, but the model's is {}", m.path,
                    p.name, dtype_name(e->dtype), dtype_name(p.value.dtype()));
    const Shape& want = p.global_shape;
    const bool same = e->global_shape == want;
    // A vocabulary padded for another tp: the same real rows, other padding.
    const bool repad = e->rows >= 0 && want.size() == e->global_shape.size() && !want.empty() &&
                       want[0] >= e->rows &&
                       std::equal(want.begin() + 1, want.end(), e->global_shape.begin() + 1);
    TESSERA_REQUIRE(same || repad, "{}: tensor '{}' has global shape {}{}, but the model's is {}", m.path,
                    p.name, shape_string(e->global_shape),
                    e->rows >= 0 ? fmt::format(" ({} real rows)", e->rows) : "", shape_string(want));
    // Saved exactly as this rank holds it: read only its own piece.
    const bool replicated = p.shard.kind == ShardSpec::Kind::Replicated;
    const bool own_piece = same && e->shard.kind == p.shard.kind && e->shard.axis == p.shard.axis &&
                           e->shard.blocks == p.shard.blocks && (replicated || m.layout.tp == tp_size);
    const auto load_into = [&](Tensor& dst, const std::string& prefix) {
      Tensor shard;
      if (own_piece) {
        shard = reader.local_piece(*e, prefix, replicated ? 0 : tp_rank);
      } else {
        Tensor g = reader.global(*e, prefix);
        if (!same) g = resize_padded_rows(g, want, e->rows);
        shard = take_shard(g, p.shard, tp_rank, tp_size);
      }
      if (dst.defined()) {
        TESSERA_CHECK(dst.shape() == shard.shape(), "{} of {} has shape {}, expected {}", prefix, p.name,
                      shape_string(dst.shape()), shape_string(shard.shape()));
        dst.copy_from(shard);  // keeps views into flat buffers intact
      } else {
        dst = std::move(shard);
      }
    };
    load_into(p.value, "param");
    // The checkpoint decides whether a parameter is pruned: a mask is loaded, or dropped.
    p.mask = Tensor();
    if (e->masked) load_into(p.mask, "mask");
    if (!state.moments.empty()) {
      load_into(state.moments[i]->exp_avg, "exp_avg");
      load_into(state.moments[i]->exp_avg_sq, "exp_avg_sq");
    }
  }
  state.step = m.step;
  state.optimizer_steps = m.optimizer_steps;
  return m.step;
}

}  // namespace tessera
