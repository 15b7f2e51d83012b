// The config schema: one table row per dotted key (its type and rule, how to read it from
// the tree, check it, and write it back). Loading, validation, dumping and the unknown-key
// suggestions all work from this table, so a new Config field is one new row.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "launcher/config_tree.h"
#include "core/config.h"

namespace tessera::config {

struct Field {
  std::string key;   // dotted: "train.optimizer.lr"
  std::string rule;  // what a valid value is: "must be a positive number"
  // Stores the node's value into the config; false when the node's type or form is wrong.
  std::function<bool(const ConfigNode&, Config&)> read;
  // Empty when the config's value obeys the rule, else the rule it breaks.
  std::function<std::string(const Config&)> violation;
  // The config's value as a node, for dumping and messages.
  std::function<ConfigNode(const Config&)> write;
  // The kind of value, for the generated reference (docs/configuration.md): "integer", "choice", ...
  std::string type = {};
};

// Every field, in the order config_to_yaml writes them.
const std::vector<Field>& schema();
const Field* find_field(const std::string& key);
// "" (the top level), "model", ..., "train.optimizer".
bool is_section(const std::string& key);
// The config's value of a field, rendered for a message ("128", "'zigzag'", "[3, 2]").
std::string show(const Config& c, const std::string& key);

// "unknown key 'model.hiden_size' (did you mean 'model.hidden_size'?)", or with the known
// keys of its section when nothing is close.
std::string unknown_key_message(const std::string& key);

// Where values came from, for the "source: " prefix of messages: the file, or a --set.
class Provenance {
 public:
  explicit Provenance(std::string source);
  void mark_override(const std::string& key) { overridden_.insert(key); }
  // "configs/x.yaml: " or "configs/x.yaml: --set " when key (or a section above it) was set.
  std::string prefix(const std::string& key) const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::set<std::string> overridden_;
};

// Throws InputError "<prefix>key = value: rule" unless ok; value is the config's.
void require(bool ok, const Config& c, const Provenance& where, const std::string& key,
             const std::string& rule);

// Every rule of a complete config that does not depend on the world size: each field's own
// rule, then the rules that relate fields (min_lr <= lr, heads divide hidden, ...).
// custom_layers: how many layers an embedding program adds to the layer graph.
void check_config(const Config& c, const Provenance& where, int custom_layers = 0);

}  // namespace tessera::config
