// The config tree: YAML text -> ConfigNode (the only place yaml-cpp parses), overrides,
// one-line rendering for messages and YAML output.
#include "launcher/config_tree.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <sstream>

#include "core/error.h"

namespace tessera::config {
namespace {

// Messages go to a terminal as one line: newlines become spaces, and other control bytes and
// bytes that are not UTF-8 (yaml-cpp quotes the offending byte of a binary file) become \xNN.
std::string one_line(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool valid = n > 0 && i + n <= text.size();
    for (size_t k = 1; valid && k < n; ++k) valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    if (c == '\n') {
      out += ' ';
    } else if (!valid || c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.append(text, i, n);
      i += n;
      continue;
    }
    ++i;
  }
  return out;
}

bool is_one_of(const std::string& text, std::initializer_list<const char*> words) {
  return std::any_of(words.begin(), words.end(), [&](const char* w) { return text == w; });
}

bool is_null_word(const std::string& t) { return is_one_of(t, {"~", "null", "Null", "NULL"}); }
bool is_bool_word(const std::string& t) {
  return is_one_of(t, {"true", "false", "True", "False", "TRUE", "FALSE"});
}
// YAML 1.1 readers (PyYAML among them) take these as booleans; quote them when writing.
bool is_yaml11_bool(const std::string& t) {
  return is_one_of(t, {"yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES",
                       "NO", "ON", "OFF", "Y", "N"});
}

// Whether a plain scalar would be read as something other than a string.
bool reads_as_non_string(const std::string& text) {
  ConfigNode probe = ConfigNode::scalar(text);
  return is_null_word(text) || is_bool_word(text) || scalar_number(probe).has_value() ||
         is_one_of(text, {".inf", "-.inf", ".nan", ".Inf", ".NaN"});
}

// Configs nest three deep; far deeper is an alias that refers to itself (a: &x [*x]).
constexpr int kMaxDepth = 32;

ConfigNode from_yaml(const YAML::Node& node, const std::string& source, const std::string& at,
                     int depth = 0) {
  TESSERA_REQUIRE(depth < kMaxDepth, "{}: '{}' nests more than {} levels deep (a recursive alias?)",
                  source, at, kMaxDepth);
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return {};
    case YAML::NodeType::Scalar:
      // yaml-cpp tags plain scalars "?", quoted ones "!", explicit tags by name.
      return ConfigNode::scalar(node.Scalar(), node.Tag() != "?");
    case YAML::NodeType::Sequence: {
      ConfigNode out = ConfigNode::sequence({});
      for (const auto& item : node) out.items.push_back(from_yaml(item, source, at, depth + 1));
      return out;
    }
    case YAML::NodeType::Map: {
      ConfigNode out = ConfigNode::map();
      for (const auto& kv : node) {
        const YAML::Mark mark = kv.first.Mark();
        const std::string where = fmt::format("{}:{}:{}", source, mark.line + 1, mark.column + 1);
        TESSERA_REQUIRE(kv.first.IsScalar(), "{}: keys{} must be plain names", where,
                        at.empty() ? "" : " in '" + at + "'");
        const std::string name = kv.first.Scalar();
        const std::string key = at.empty() ? name : at + "." + name;
        TESSERA_REQUIRE(out.find(name) == nullptr, "{}: duplicate key '{}'", where, key);
        out.entries.emplace_back(name, from_yaml(kv.second, source, key, depth + 1));
      }
      return out;
    }
  }
  return {};
}

void stamp(ConfigNode& node, const std::string& text) {
  node.override_text = text;
  for (auto& item : node.items) stamp(item, text);
  for (auto& [key, value] : node.entries) stamp(value, text);
}

void merge_into(ConfigNode& target, const ConfigNode& value) {
  if (target.kind == ConfigNode::Kind::Map && value.kind == ConfigNode::Kind::Map) {
    for (const auto& [key, child] : value.entries) {
      if (ConfigNode* existing = target.find(key)) {
        merge_into(*existing, child);
      } else {
        target.set(key, child);
      }
    }
    return;
  }
  target = value;
}

bool valid_key_segment(const std::string& segment) {
  return !segment.empty() && std::all_of(segment.begin(), segment.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

bool needs_quotes(const std::string& s) {
  if (s.empty() || reads_as_non_string(s) || is_yaml11_bool(s)) return true;
  if (std::string_view("-?:,[]{}#&*!|>'\"%@` \t").find(s.front()) != std::string_view::npos) {
    return true;
  }
  if (s.back() == ' ' || s.back() == ':') return true;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return true;
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
}

std::string emit_scalar(const ConfigNode& node) {
  if (node.kind == ConfigNode::Kind::Null) return "null";
  if (!node.quoted || !needs_quotes(node.text)) return node.text;
  YAML::Emitter out;
  out << YAML::DoubleQuoted << node.text;
  return out.c_str();
}

std::string emit_flow(const ConfigNode& node) {
  if (node.kind != ConfigNode::Kind::Sequence) return emit_scalar(node);
  std::vector<std::string> parts;
  for (const auto& item : node.items) parts.push_back(emit_flow(item));
  return "[" + fmt::format("{}", fmt::join(parts, ", ")) + "]";
}

void emit_map(const ConfigNode& map, int indent, std::string& out) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  for (const auto& [key, value] : map.entries) {
    if (value.kind == ConfigNode::Kind::Map && !value.entries.empty()) {
      out += pad + key + ":\n";
      emit_map(value, indent + 2, out);
    } else if (value.kind == ConfigNode::Kind::Map) {
      out += pad + key + ": {}\n";
    } else {
      out += pad + key + ": " + emit_flow(value) + "\n";
    }
  }
}

}  // namespace

ConfigNode ConfigNode::scalar(std::string text, bool quoted) {
  ConfigNode node;
  node.kind = Kind::Scalar;
  node.text = std::move(text);
  node.quoted = quoted;
  return node;
}

ConfigNode ConfigNode::sequence(std::vector<ConfigNode> items) {
  ConfigNode node;
  node.kind = Kind::Sequence;
  node.items = std::move(items);
  return node;
}

ConfigNode ConfigNode::map() {
  ConfigNode node;
  node.kind = Kind::Map;
  return node;
}

const ConfigNode* ConfigNode::find(const std::string& key) const {
  for (const auto& [name, value] : entries) {
    if (name == key) return &value;
  }
  return nullptr;
}

ConfigNode* ConfigNode::find(const std::string& key) {
  return const_cast<ConfigNode*>(static_cast<const ConfigNode*>(this)->find(key));
}

ConfigNode& ConfigNode::set(const std::string& key, ConfigNode value) {
  if (ConfigNode* existing = find(key)) return *existing = std::move(value);
  entries.emplace_back(key, std::move(value));
  return entries.back().second;
}

namespace {

// Counts documents without building them.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// The documents of a YAML text, at most two (enough to reject a second one). yaml-cpp 0.7's
// LoadAll never returns on some malformed input such as "," (upstream issue #1040, found by
// tests/fuzz), so documents are counted with a bound first and only then loaded.
std::vector<YAML::Node> load_documents(const std::string& text) {
  std::stringstream stream(text);
  YAML::Parser parser(stream);
  DocumentCounter counter;
  size_t count = 0;
  while (count < 2 && parser.HandleNextDocument(counter)) ++count;
  if (count == 0) return {};
  std::vector<YAML::Node> documents{YAML::Load(text)};
  if (count > 1) documents.emplace_back();
  return documents;
}

}  // namespace

ConfigNode parse_yaml(const std::string& text, const std::string& source) {
  std::vector<YAML::Node> documents;
  try {
    documents = load_documents(text);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) throw InputError(fmt::format("{}: {}", source, one_line(e.msg)));
    throw InputError(fmt::format("{}:{}:{}: {}", source, e.mark.line + 1, e.mark.column + 1,
                                 one_line(e.msg)));
  }
  TESSERA_REQUIRE(documents.size() <= 1, "{}: expected one YAML document, found more", source);
  if (documents.empty()) return ConfigNode::map();
  try {
    return from_yaml(documents.front(), source, "");
  } catch (const YAML::Exception& e) {
    throw InputError(fmt::format("{}: {}", source, one_line(e.what())));
  }
}

Override parse_override(const std::string& text, const std::string& source) {
  const std::string prefix = fmt::format("{}: --set '{}'", source, text);
  const auto eq = text.find('=');
  TESSERA_REQUIRE(eq != std::string::npos,
                  "{}: expected dotted.key=value, e.g. train.optimizer.lr=3e-4", prefix);
  Override out;
  out.text = text;
  out.key = trim(text.substr(0, eq));
  size_t start = 0;
  while (true) {
    const auto dot = out.key.find('.', start);
    out.path.push_back(out.key.substr(start, dot - start));
    TESSERA_REQUIRE(valid_key_segment(out.path.back()),
                    "{}: '{}' is not a dotted key (names of letters, digits and _ joined by dots)",
                    prefix, out.key);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  std::vector<YAML::Node> documents;
  try {
    documents = load_documents(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw InputError(fmt::format("{}: {}", prefix, one_line(e.msg)));
  }
  TESSERA_REQUIRE(documents.size() <= 1, "{}: the value must be a single YAML value", prefix);
  try {
    if (!documents.empty()) out.value = from_yaml(documents.front(), "--set", out.key);
  } catch (const InputError&) {
    throw InputError(fmt::format("{}: the value has duplicate or non-scalar keys", prefix));
  }
  stamp(out.value, text);
  return out;
}

void apply_override(ConfigNode& root, const Override& o) {
  ConfigNode* node = &root;
  for (size_t i = 0; i + 1 < o.path.size(); ++i) {
    ConfigNode* child = node->find(o.path[i]);
    if (child == nullptr || child->kind != ConfigNode::Kind::Map) {
      ConfigNode created = ConfigNode::map();
      created.override_text = o.text;
      child = &node->set(o.path[i], std::move(created));
    }
    node = child;
  }
  ConfigNode* target = node->find(o.path.back());
  if (target == nullptr) {
    node->set(o.path.back(), o.value);
  } else {
    merge_into(*target, o.value);
  }
}

template <class T>
std::optional<T> scalar_integer(const ConfigNode& node) {
  if (node.kind != ConfigNode::Kind::Scalar) return std::nullopt;
  std::string_view text = node.text;
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  const size_t digits_from = !text.empty() && text.front() == '-' ? 1 : 0;
  if (text.size() == digits_from ||
      !std::all_of(text.begin() + digits_from, text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

template std::optional<int> scalar_integer<int>(const ConfigNode&);
template std::optional<int64_t> scalar_integer<int64_t>(const ConfigNode&);
template std::optional<uint64_t> scalar_integer<uint64_t>(const ConfigNode&);

std::optional<double> scalar_number(const ConfigNode& node) {
  if (node.kind != ConfigNode::Kind::Scalar) return std::nullopt;
  std::string_view text = node.text;
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  // from_chars also reads "inf" and "nan"; YAML spells those .inf/.nan and we want neither.
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+';
      })) {
    return std::nullopt;
  }
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

std::optional<bool> scalar_bool(const ConfigNode& node) {
  if (node.kind != ConfigNode::Kind::Scalar) return std::nullopt;
  if (is_one_of(node.text, {"true", "True", "TRUE"})) return true;
  if (is_one_of(node.text, {"false", "False", "FALSE"})) return false;
  return std::nullopt;
}

std::string describe(const ConfigNode& node) {
  std::string out;
  switch (node.kind) {
    case ConfigNode::Kind::Null:
      out = "null";
      break;
    case ConfigNode::Kind::Scalar:
      if (!node.quoted && reads_as_non_string(node.text)) {
        out = node.text;
      } else {
        out = "'";
        for (char c : node.text) out += c == '\'' ? std::string("''") : std::string(1, c);
        out += "'";
      }
      break;
    case ConfigNode::Kind::Sequence: {
      std::vector<std::string> parts;
      for (const auto& item : node.items) parts.push_back(describe(item));
      out = fmt::format("[{}]", fmt::join(parts, ", "));
      break;
    }
    case ConfigNode::Kind::Map: {
      std::vector<std::string> parts;
      for (const auto& [key, value] : node.entries) parts.push_back(key + ": " + describe(value));
      out = fmt::format("{{{}}}", fmt::join(parts, ", "));
      break;
    }
  }
  out = one_line(out);
  constexpr size_t kMax = 80;
  if (out.size() > kMax) out = out.substr(0, kMax - 3) + "...";
  return out;
}

std::string emit_yaml(const ConfigNode& root, const std::string& header_comment) {
  std::string out;
  size_t start = 0;
  while (start < header_comment.size()) {
    const auto end = header_comment.find('\n', start);
    out += "# " + header_comment.substr(start, end - start) + "\n";
    if (end == std::string::npos) break;
    start = end + 1;
  }
  emit_map(root, 0, out);
  return out;
}

namespace {
std::string with_point(std::string text) {
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}
}  // namespace

std::string format_number(double value) { return with_point(fmt::format("{}", value)); }
std::string format_number(float value) { return with_point(fmt::format("{}", value)); }

}  // namespace tessera::config
