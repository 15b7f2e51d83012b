// Saving a checkpoint: shard files, the merged manifest, the commit (rename, `latest`) and
// pruning. See checkpoint.h for the crash-safety argument.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <tuple>

#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/durable_file.h"
#include "runtime/comm/parallel_grid.h"
#include "core/config.h"
#include "runtime/io/safetensors.h"

namespace tessera {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string step_name(int64_t step) { return fmt::format("step_{}", step); }

// Every rank's string, in rank order, over a communicator that only moves tensors: the
// lengths first, then the bytes packed into equally sized int32 buffers.
std::vector<std::string> all_gather_strings(Communicator* world, const std::string& mine) {
  if (world == nullptr) return {mine};
  Communicator& comm = *world;
  const int n = comm.size();
  Tensor length = Tensor::empty({1}, DType::I32);
  length.i32()[0] = static_cast<int32_t>(mine.size());
  Tensor lengths = Tensor::empty({n}, DType::I32);
  comm.all_gather(length, lengths);
  int64_t longest = 0;
  for (int r = 0; r < n; ++r) longest = std::max<int64_t>(longest, lengths.i32()[r]);
  const int64_t words = std::max<int64_t>(1, (longest + 3) / 4);
  Tensor in = Tensor::zeros({words}, DType::I32);
  std::memcpy(in.i32(), mine.data(), mine.size());
  Tensor out = Tensor::empty({n * words}, DType::I32);
  comm.all_gather(in, out);
  std::vector<std::string> all;
  for (int r = 0; r < n; ++r) {
    all.emplace_back(reinterpret_cast<const char*>(out.i32() + r * words), lengths.i32()[r]);
  }
  return all;
}

// Removes a checkpoint directory so that a crash half-way never leaves something that looks
// complete: the manifest goes first (made durable), then the rest.
void remove_checkpoint_dir(const fs::path& step_dir) {
  std::error_code ec;
  if (fs::remove(step_dir / kManifestFile, ec)) checkpoint_io::fsync_directory(step_dir.string());
  fs::remove_all(step_dir, ec);
  TESSERA_CHECK(!ec, "cannot remove {}: {}", step_dir.string(), ec.message());
}

bool parse_step_name(const std::string& name, const std::string& suffix, int64_t* step) {
  if (name.rfind("step_", 0) != 0 || name.size() <= 5 + suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  const std::string digits = name.substr(5, name.size() - 5 - suffix.size());
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), is_digit)) return false;
  *step = std::stoll(digits);
  return true;
}

// Keeps the newest `keep` complete checkpoints (and always `current`); removes older ones,
// unfinished step directories older than `current` and stale staging directories.
std::vector<std::string> prune(const fs::path& dir, int64_t current, int keep) {
  std::vector<std::pair<int64_t, fs::path>> complete, doomed;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
    int64_t step = 0;
    if (parse_step_name(name, ".tmp", &step)) {
      doomed.emplace_back(step, e.path());
    } else if (parse_step_name(name, "", &step)) {
      if (fs::is_regular_file(e.path() / kManifestFile)) {
        complete.emplace_back(step, e.path());
      } else if (step < current) {
        doomed.emplace_back(step, e.path());
      }
    }
  }
  std::sort(complete.rbegin(), complete.rend());
  int kept = 0;
  for (const auto& [step, path] : complete) {
    if (step == current || keep <= 0 || kept < keep) {
      ++kept;
    } else {
      doomed.emplace_back(step, path);
    }
  }
  std::sort(doomed.begin(), doomed.end());
  std::vector<std::string> removed;
  for (const auto& [step, path] : doomed) {
    remove_checkpoint_dir(path);
    removed.push_back(path.string());
  }
  if (!removed.empty()) checkpoint_io::fsync_directory(dir.string());
  return removed;
}

// The manifest entry of parameter p as this rank would save it, without pieces.
TensorEntry tensor_entry(const Parameter& p, const Tensor& value_like, const CheckpointState& state,
                         const CheckpointLayout& layout) {
  TensorEntry e;
  e.name = p.name;
  e.dtype = value_like.dtype();
  e.global_shape = p.global_shape;
  e.shard = p.shard;
  e.masked = p.mask.defined();
  const auto rows = state.padded_rows.find(p.name);
  if (rows != state.padded_rows.end()) e.rows = rows->second;
  e.pp_rank = layout.pp_rank;
  return e;
}

// Whether this rank's files hold parameter p: replicated ones are saved by tp rank 0, and a
// tied head's copy of the embedding table not at all (the first stage's embedding writes it).
bool saved_here(const Parameter& p, const CheckpointLayout& layout) {
  return (p.shard.kind == ShardSpec::Kind::Split || layout.tp_rank == 0) && !p.tied_replica;
}

// ZeRO: this dp rank's ranges of every parameter of its (tp, pp) shard, flat, in its own file.
ShardRecord write_owned_ranges(const std::string& staging_dir, const CheckpointState& state,
                               const CheckpointLayout& layout) {
  ShardRecord record;
  const std::string file = shard_file_name(layout.tp_rank, layout.pp_rank, layout.dp_rank);
  std::map<size_t, const OwnedRange*> owned;
  for (const OwnedRange& r : *state.owned) {
    TESSERA_CHECK(r.param < state.params.size() && owned.emplace(r.param, &r).second,
                  "owned range of parameter index {}: out of range or given twice", r.param);
  }
  std::map<std::string, Tensor> tensors;
  for (size_t i = 0; i < state.params.size(); ++i) {
    const Parameter& p = *state.params[i];
    if (!saved_here(p, layout)) continue;
    const auto it = owned.find(i);
    TensorEntry e = tensor_entry(p, it != owned.end() ? it->second->value : p.value, state, layout);
    if (it != owned.end()) {
      const OwnedRange& r = *it->second;
      const Shape local = shard_shape(p.global_shape, p.shard, layout.tp);
      const int64_t n = r.value.numel();
      TESSERA_CHECK(r.begin >= 0 && r.begin + n <= shape_numel(local) && r.exp_avg.numel() == n &&
                        r.exp_avg_sq.numel() == n,
                    "owned range of {} does not fit its shard {}", p.name, shape_string(local));
      tensors.emplace("param." + p.name, r.value.view({n}));
      tensors.emplace("exp_avg." + p.name, r.exp_avg.view({n}));
      tensors.emplace("exp_avg_sq." + p.name, r.exp_avg_sq.view({n}));
      if (p.mask.defined()) tensors.emplace("mask." + p.name, p.mask.view({p.mask.numel()}).narrow(r.begin, n));
      e.pieces.push_back({file, p.shard.kind == ShardSpec::Kind::Split ? layout.tp_rank : 0, local,
                          shard_ranges(p.global_shape, p.shard, layout.tp_rank, layout.tp),
                          std::pair(r.begin, r.begin + n)});
    }
    record.tensors.push_back(std::move(e));
  }
  const std::string path = (fs::path(staging_dir) / file).string();
  write_safetensors(path, tensors,
                    {{"format", "pt"},
                     {"tessera", "checkpoint dp shard"},
                     {"step", std::to_string(state.step)},
                     {"tp_rank", std::to_string(layout.tp_rank)},
                     {"pp_rank", std::to_string(layout.pp_rank)},
                     {"dp_rank", std::to_string(layout.dp_rank)}});
  record.file = ShardFileEntry{file, layout.tp_rank, layout.pp_rank, layout.dp_rank, fs::file_size(path)};
  return record;
}

}  // namespace

std::map<std::string, int64_t> vocab_padded_rows(const ModelConfig& model, const LayerGraph& graph) {
  const int64_t vocab = graph.vocab_size;
  if (model.arch == "gpt" || model.arch == "llama") return {{"wte.weight", vocab}, {"lm_head.weight", vocab}};
  const int64_t out = graph.layers.empty() ? vocab : graph.layers.back().out_features;
  return {{"embedding.weight", vocab}, {"head.weight", out}, {"head.bias", out}};
}

CheckpointLayout checkpoint_layout(const ParallelGrid& grid, int zero_stage) {
  return {grid.dp_size(), grid.tp_size(), grid.pp_size(), grid.dp_rank(),
          grid.tp_rank(), grid.pp_rank(), zero_stage};
}

std::string begin_checkpoint(const std::string& dir, int64_t step) {
  const fs::path staging = fs::path(dir) / (step_name(step) + ".tmp");
  std::error_code ec;
  fs::create_directories(dir, ec);
  TESSERA_REQUIRE(!ec, "checkpoint.dir {}: cannot create: {}", dir, ec.message());
  fs::remove_all(staging, ec);
  TESSERA_CHECK(!ec, "cannot remove the stale {}: {}", staging.string(), ec.message());
  fs::create_directory(staging, ec);
  TESSERA_CHECK(!ec, "cannot create {}: {}", staging.string(), ec.message());
  checkpoint_io::fsync_directory(dir);
  return staging.string();
}

json shard_record_to_json(const ShardRecord& record) {
  Manifest m;  // reuse the manifest's tensor encoding
  if (record.file) m.files.push_back(*record.file);
  m.tensors = record.tensors;
  const json full = manifest_to_json(m);
  return {{"files", full["files"]}, {"tensors", full["tensors"]}};
}

ShardRecord shard_record_from_json(const json& j) {
  ShardRecord r;
  for (const json& f : j.at("files")) {
    r.file = ShardFileEntry{f.at("name"), f.at("tp_rank"), f.at("pp_rank"), f.value("dp_rank", -1), f.at("bytes")};
  }
  for (const json& t : j.at("tensors")) {
    TensorEntry e;
    e.name = t.at("name");
    e.dtype = DType::F32;
    for (DType d : {DType::F32, DType::BF16, DType::F16, DType::I32, DType::U16}) {
      if (dtype_name(d) == t.at("dtype")) e.dtype = d;
    }
    e.global_shape = t.at("global_shape").get<Shape>();
    const json& s = t.at("shard");
    e.shard =
        s.at("kind") == "split" ? ShardSpec::split(s.at("axis"), s.at("blocks")) : ShardSpec::replicated();
    e.rows = t.value("rows", int64_t{-1});
    e.masked = t.value("masked", false);
    e.pp_rank = t.at("pp_rank");
    for (const json& p : t.at("pieces")) {
      ShardPiece piece{p.at("file"), p.at("tp_rank"), p.at("shape").get<Shape>(), {}, std::nullopt};
      for (const json& range : p.at("ranges")) piece.ranges.emplace_back(range[0], range[1]);
      if (p.contains("elements")) piece.elements = std::pair(p["elements"][0], p["elements"][1]);
      e.pieces.push_back(std::move(piece));
    }
    r.tensors.push_back(std::move(e));
  }
  return r;
}

ShardRecord write_shard_file(const std::string& staging_dir, const CheckpointState& state,
                             const CheckpointLayout& layout) {
  if (state.owned) return write_owned_ranges(staging_dir, state, layout);
  ShardRecord record;
  if (layout.dp_rank != 0) return record;  // the dp replicas hold the same shard
  TESSERA_CHECK(state.moments.empty() || state.moments.size() == state.params.size(),
                "{} moments for {} parameters", state.moments.size(), state.params.size());
  const std::string file = shard_file_name(layout.tp_rank, layout.pp_rank);
  std::map<std::string, Tensor> tensors;
  for (size_t i = 0; i < state.params.size(); ++i) {
    const Parameter& p = *state.params[i];
    const bool split = p.shard.kind == ShardSpec::Kind::Split;
    if (!saved_here(p, layout)) continue;
    const Shape local = shard_shape(p.global_shape, p.shard, layout.tp);
    TESSERA_CHECK(p.value.shape() == local, "parameter {} has shape {}, expected {} for tp {}", p.name,
                  shape_string(p.value.shape()), shape_string(local), layout.tp);
    TESSERA_CHECK(tensors.emplace("param." + p.name, p.value).second, "parameter {} appears twice", p.name);
    if (!state.moments.empty()) {
      const OptimizerMoments& m = *state.moments[i];
      TESSERA_CHECK(m.exp_avg.shape() == local && m.exp_avg_sq.shape() == local,
                    "moments of {} do not have the parameter's shape {}", p.name, shape_string(local));
      tensors.emplace("exp_avg." + p.name, m.exp_avg);
      tensors.emplace("exp_avg_sq." + p.name, m.exp_avg_sq);
    }
    if (p.mask.defined()) {
      TESSERA_CHECK(p.mask.shape() == local, "mask of {} does not have the parameter's shape {}", p.name,
                    shape_string(local));
      tensors.emplace("mask." + p.name, p.mask);
    }
    TensorEntry e = tensor_entry(p, p.value, state, layout);
    e.pieces.push_back({file, split ? layout.tp_rank : 0, local,
                        shard_ranges(p.global_shape, p.shard, layout.tp_rank, layout.tp), std::nullopt});
    record.tensors.push_back(std::move(e));
  }
  const std::string path = (fs::path(staging_dir) / file).string();
  write_safetensors(path, tensors,
                    {{"format", "pt"},
                     {"tessera", "checkpoint shard"},
                     {"step", std::to_string(state.step)},
                     {"tp_rank", std::to_string(layout.tp_rank)},
                     {"pp_rank", std::to_string(layout.pp_rank)}});
  record.file = ShardFileEntry{file, layout.tp_rank, layout.pp_rank, -1, fs::file_size(path)};
  return record;
}

Manifest build_manifest(const CheckpointState& state, const CheckpointLayout& layout,
                        const std::string& config_yaml, const json& vocab,
                        const std::vector<ShardRecord>& records) {
  Manifest m;
  m.step = state.step;
  m.optimizer_steps = state.optimizer_steps >= 0 ? state.optimizer_steps : state.step;
  if (!state.moments.empty() || state.owned) m.moments = {"exp_avg", "exp_avg_sq"};
  m.layout = {layout.dp, layout.tp, layout.pp, 0, 0, 0, layout.zero_stage};
  m.config_yaml = config_yaml;
  m.model = state.model;
  m.vocabulary = vocab;
  m.extra = state.extra.is_null() ? json::object() : state.extra;
  // Stage order, then tp rank 0 first: tp rank 0 holds every parameter of its stage, so the
  // tensors come out in model order (a dp-sharded record lists every tensor, with or without
  // pieces).
  std::vector<const ShardRecord*> writers;
  for (const ShardRecord& r : records) {
    if (r.file) writers.push_back(&r);
  }
  std::sort(writers.begin(), writers.end(), [](const ShardRecord* a, const ShardRecord* b) {
    return std::tuple(a->file->pp_rank, a->file->tp_rank, a->file->dp_rank) <
           std::tuple(b->file->pp_rank, b->file->tp_rank, b->file->dp_rank);
  });
  std::map<std::string, size_t> index;
  for (const ShardRecord* r : writers) {
    m.files.push_back(*r->file);
    for (const TensorEntry& t : r->tensors) {
      const auto [it, fresh] = index.emplace(t.name, m.tensors.size());
      if (fresh) {
        m.tensors.push_back(t);
        continue;
      }
      TensorEntry& seen = m.tensors[it->second];
      // A dp-sharded record lists tensors it holds no part of; the dtype is a holder's.
      if (seen.pieces.empty()) seen.dtype = t.dtype;
      TESSERA_CHECK(seen.global_shape == t.global_shape && seen.pp_rank == t.pp_rank &&
                        seen.shard.kind == t.shard.kind && seen.shard.axis == t.shard.axis &&
                        seen.shard.blocks == t.shard.blocks && seen.rows == t.rows && seen.masked == t.masked,
                    "ranks disagree on parameter {} (shape, shard spec, pipeline stage or mask)", t.name);
      seen.pieces.insert(seen.pieces.end(), t.pieces.begin(), t.pieces.end());
    }
  }
  // What we write must pass the reader's checks (every shard present, shapes and ranges),
  // exactly as it will be read back: through its text.
  return manifest_from_json(json::parse(manifest_to_json(m).dump()), "the manifest being saved");
}

SaveResult commit_checkpoint(const std::string& dir, int64_t step, int keep) {
  const fs::path root(dir);
  const fs::path staging = root / (step_name(step) + ".tmp"), final_dir = root / step_name(step);
  TESSERA_CHECK(fs::is_regular_file(staging / kManifestFile), "{} has no manifest to commit",
                staging.string());
  SaveResult result;
  result.step_dir = final_dir.string();
  for (const fs::directory_entry& e : fs::directory_iterator(staging)) {
    if (e.path().extension() == ".safetensors") result.bytes += e.file_size();
  }
  checkpoint_io::fsync_directory(staging.string());
  // Saving the same step twice replaces the old directory (rename cannot replace a non-empty one).
  if (fs::exists(final_dir)) remove_checkpoint_dir(final_dir);
  std::error_code ec;
  fs::rename(staging, final_dir, ec);
  TESSERA_CHECK(!ec, "cannot rename {} to {}: {}", staging.string(), final_dir.string(), ec.message());
  checkpoint_io::fsync_directory(dir);
  // The commit point: `latest` names the new checkpoint only once all of it is durable.
  checkpoint_io::write_file_durably((root / kLatestFile).string(), step_name(step) + "\n");
  result.removed = prune(root, step, keep);
  return result;
}

namespace {

// Runs `phase` on this rank and shares its outcome with every rank: each rank's reply (or
// the error it threw) is all-gathered, so a failure anywhere -- a full disk on rank 5 --
// makes every rank throw the same one-line error at once instead of some ranks waiting in a
// collective until the timeout. Returns every rank's reply.
std::vector<std::string> run_phase(Communicator* world, const std::string& what,
                                   const std::function<std::string()>& phase) {
  json mine;
  try {
    mine = {{"reply", phase()}};
  } catch (const InputError& e) {
    mine = {{"error", e.what()}, {"input", true}};
  } catch (const std::exception& e) {
    mine = {{"error", e.what()}, {"input", false}};
  }
  std::vector<std::string> replies;
  const std::vector<std::string> all = all_gather_strings(world, mine.dump());
  for (size_t r = 0; r < all.size(); ++r) {
    const json reply = json::parse(all[r]);
    if (reply.contains("error")) {
      const std::string message =
          fmt::format("{} failed on rank {}: {}", what, r, reply["error"].get<std::string>());
      if (reply["input"].get<bool>()) throw InputError(message);
      throw Error(message);
    }
    replies.push_back(reply["reply"].get<std::string>());
  }
  return replies;
}

}  // namespace

SaveResult save_checkpoint(const std::string& dir, const CheckpointState& state,
                           const CheckpointLayout& layout, Communicator* world,
                           const std::string& config_yaml, const json& vocab, int keep) {
  const bool root = world == nullptr || world->rank() == 0;
  const std::string staging = (fs::path(dir) / (step_name(state.step) + ".tmp")).string();
  const std::string what = fmt::format("saving checkpoint step {}", state.step);
  // 1. World rank 0 makes the staging directory; nobody writes before it exists.
  run_phase(world, what, [&] {
    if (root) begin_checkpoint(dir, state.step);
    return std::string();
  });
  // 2. The shard writers write and fsync their files. The records are gathered only after
  //    every rank has finished, so the manifest is written after all the data is durable.
  const std::vector<std::string> records_json = run_phase(
      world, what, [&] {
        if (state.write_extra_files) state.write_extra_files(staging);
        return shard_record_to_json(write_shard_file(staging, state, layout)).dump();
      });
  // 3. World rank 0 writes the manifest and commits; every rank waits for the outcome.
  SaveResult result;
  result.step_dir = (fs::path(dir) / step_name(state.step)).string();
  run_phase(world, what, [&] {
    if (root) {
      std::vector<ShardRecord> records;
      for (const std::string& text : records_json)
        records.push_back(shard_record_from_json(json::parse(text)));
      write_manifest(staging, build_manifest(state, layout, config_yaml, vocab, records));
      result = commit_checkpoint(dir, state.step, keep);
    }
    return std::string();
  });
  return result;
}

std::optional<std::string> find_latest_checkpoint(const std::string& dir, Communicator* world,
                                                  std::vector<std::string>* warnings) {
  // Rank 0 decides and the others follow, so every rank resumes from the same step even if
  // the directory changes under them or a shared file system shows it late on some nodes.
  std::optional<std::string> found;
  const std::vector<std::string> replies = run_phase(world, "finding the latest checkpoint in " + dir, [&] {
    if (world != nullptr && world->rank() != 0) return std::string();
    found = find_latest_checkpoint(dir, warnings);
    return found ? *found : std::string("-");
  });
  if (replies[0] == "-") return std::nullopt;
  return replies[0];
}

}  // namespace tessera
