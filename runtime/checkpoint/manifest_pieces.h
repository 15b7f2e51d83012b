// The rules that tie a manifest tensor's pieces to its shard spec, the saved layout and the file
// list (one piece per tp rank, or dp-sharded parts that cover each exactly once); used by
// manifest_from_json, apart so that manifest.cc stays one concept: the JSON.
#pragma once

#include <map>
#include <string>

#include "runtime/checkpoint/manifest.h"

namespace tessera {

// InputError "<where>...: <rule>" on the first piece that breaks a rule.
void check_pieces(const TensorEntry& t, const CheckpointLayout& layout,
                  const std::map<std::string, ShardFileEntry>& files, const std::string& where);

}  // namespace tessera
