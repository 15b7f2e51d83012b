// A config document as a small ordered tree (the loader's view of YAML): parsed from text,
// patched by --set overrides, rendered for messages and dumped back to YAML. The schema
// checks keys and types on this tree, so no yaml-cpp type or exception leaves config_tree.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tessera::config {

struct ConfigNode {
  enum class Kind { Null, Scalar, Sequence, Map };
  Kind kind = Kind::Null;
  std::string text;     // Scalar: as written
  bool quoted = false;  // Scalar: quoted or tagged in the source, so meant as a string
  std::vector<ConfigNode> items;                            // Sequence
  std::vector<std::pair<std::string, ConfigNode>> entries;  // Map, in document order
  // Non-empty when the value came from an override: the override as given ("a.b=1").
  std::string override_text;

  static ConfigNode scalar(std::string text, bool quoted = false);
  static ConfigNode string(std::string text) { return scalar(std::move(text), true); }
  static ConfigNode sequence(std::vector<ConfigNode> items);
  static ConfigNode map();

  const ConfigNode* find(const std::string& key) const;
  ConfigNode* find(const std::string& key);
  // Replaces the value of key, or appends it.
  ConfigNode& set(const std::string& key, ConfigNode value);
};

// Parses one YAML document. Syntax errors throw InputError "source:line:col: message";
// duplicate, null and non-scalar keys, and several documents, are errors too.
ConfigNode parse_yaml(const std::string& text, const std::string& source);

// A --set override: "train.optimizer.lr=3e-4" split into its key path and YAML value.
struct Override {
  std::string text;
  std::string key;
  std::vector<std::string> path;
  ConfigNode value;
};

// Splits "dotted.key=value" and parses the value as YAML (an empty value is null). Throws
// InputError "source: --set 'text': ..." when it is not of that form.
Override parse_override(const std::string& text, const std::string& source);

// Sets the override's value at its path, creating maps on the way. A map merges into a map;
// anything else replaces. The value's nodes are stamped with the override's text.
void apply_override(ConfigNode& root, const Override& override_value);

// Plain integer (optional sign, decimal digits) that fits T; quoted digits are accepted too.
template <class T>
std::optional<T> scalar_integer(const ConfigNode& node);
// A finite number: an integer or a decimal/exponent float ("1e-3", "0.5").
std::optional<double> scalar_number(const ConfigNode& node);
// true/false (also True, TRUE, ...).
std::optional<bool> scalar_bool(const ConfigNode& node);

// One line for messages: numbers, booleans and null bare, other scalars in single quotes,
// sequences as [a, b], maps as {k: v}; long values are cut with "...".
std::string describe(const ConfigNode& node);

// Block-style YAML: maps nest, sequences are written in flow style ([0.9, 0.99]), string
// scalars are quoted only where YAML would read them as something else.
std::string emit_yaml(const ConfigNode& root, const std::string& header_comment);

// Shortest text that reads back as exactly this value, with ".0" on integral values.
std::string format_number(double value);
std::string format_number(float value);

extern template std::optional<int> scalar_integer<int>(const ConfigNode&);
extern template std::optional<int64_t> scalar_integer<int64_t>(const ConfigNode&);
extern template std::optional<uint64_t> scalar_integer<uint64_t>(const ConfigNode&);

}  // namespace tessera::config
