// OuterSync's checkpoint state: the full outer state (gathered when sharded) and the
// reductions not yet applied, so a resume between syncs continues exactly.
#include <fmt/format.h>

#include "core/error.h"
#include "runtime/train/outer_sync.h"

namespace tessera {

std::map<std::string, Tensor> OuterSync::state(std::map<std::string, std::string>& metadata) {
  std::map<std::string, Tensor> tensors;
  metadata["outer.fragments"] = std::to_string(fragments_.size());
  metadata["outer.dp"] = std::to_string(dp_size());
  for (size_t i = 0; i < fragments_.size(); ++i) {
    Fragment& f = fragments_[i];
    // A reduction in flight is completed now (not applied): its result is what the saved
    // run would have applied at its due step.
    if (f.request) {
      f.request->wait();
      f.request.reset();
    }
    metadata[fmt::format("outer.launched.{}", i)] = std::to_string(f.launched);
    metadata[fmt::format("outer.applied.{}", i)] = std::to_string(f.applied);
    for (const auto& [name, t] : {std::pair<std::string, Tensor*>{"anchor", &f.anchor}, {"momentum", &f.momentum}}) {
      if (!t->defined()) continue;
      Tensor full = *t;
      if (config_.sharded && dp_size() > 1) {
        full = Tensor::empty({f.padded});
        dp_->all_gather(*t, full);
      }
      tensors[fmt::format("outer.{}.{}", name, i)] = full.narrow(0, f.numel).clone();
    }
    if (f.launched >= 0) tensors[fmt::format("outer.pending.{}", i)] = f.send.clone();
  }
  return tensors;
}

void OuterSync::load_state(const std::map<std::string, Tensor>& tensors,
                           const std::map<std::string, std::string>& metadata) {
  const auto meta = [&](const std::string& key) {
    const auto it = metadata.find(key);
    TESSERA_REQUIRE(it != metadata.end(), "outer sync state: no `{}` in the checkpoint's replica file", key);
    return std::stoll(it->second);
  };
  TESSERA_REQUIRE(meta("outer.fragments") == static_cast<int64_t>(fragments_.size()),
                  "outer sync state: the checkpoint has {} fragments, parallel.outer_fragments is {}",
                  meta("outer.fragments"), fragments_.size());
  const bool same_dp = meta("outer.dp") == dp_size();
  for (size_t i = 0; i < fragments_.size(); ++i) {
    Fragment& f = fragments_[i];
    TESSERA_CHECK(!f.request, "outer sync: load_state with a reduction in flight");
    for (const auto& [name, t] : {std::pair<std::string, Tensor*>{"anchor", &f.anchor}, {"momentum", &f.momentum}}) {
      if (!t->defined()) continue;
      const auto it = tensors.find(fmt::format("outer.{}.{}", name, i));
      TESSERA_REQUIRE(it != tensors.end() && it->second.numel() == f.numel,
                      "outer sync state: tensor outer.{}.{} is missing or not of {} elements", name, i, f.numel);
      Tensor full = Tensor::zeros({f.padded});
      full.narrow(0, f.numel).copy_from(it->second);
      t->copy_from(full.narrow(shard_begin(f), t->numel()));
    }
    f.launched = meta(fmt::format("outer.launched.{}", i));
    f.applied = meta(fmt::format("outer.applied.{}", i));
    if (f.launched < 0) continue;
    // A reduction of the saving replicas: only meaningful for the same replicas.
    TESSERA_REQUIRE(same_dp, "outer sync state: fragment {} has a reduction pending from {} replicas; this run has {}",
                    i, meta("outer.dp"), dp_size());
    const auto it = tensors.find(fmt::format("outer.pending.{}", i));
    TESSERA_REQUIRE(it != tensors.end() && it->second.numel() == f.send.numel() && it->second.dtype() == f.send.dtype(),
                    "outer sync state: tensor outer.pending.{} is missing or does not match", i);
    f.send.copy_from(it->second);
  }
}

}  // namespace tessera
