// load_config / parse_config_string: text -> tree -> overrides -> Config -> checks; and
// config_to_yaml, the way back.
#include "launcher/config_loader.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "launcher/config_schema.h"
#include "launcher/config_tree.h"
#include "core/error.h"

namespace tessera {
namespace {

using config::ConfigNode;

// "source: " for values from the file, "source: --set a.b=1: " for those from an override.
std::string origin(const std::string& source, const ConfigNode& node) {
  return node.override_text.empty() ? source + ": "
                                    : fmt::format("{}: --set {}: ", source, node.override_text);
}

// Reads the entries of one section (prefix "" is the top level) into the config, in
// document order, so the first mistake in the file is the one reported.
void read_section(const ConfigNode& section, const std::string& prefix, Config& c,
                  config::Provenance& provenance) {
  const std::string& source = provenance.source();
  for (const auto& [name, value] : section.entries) {
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    const std::string where = value.override_text.empty() ? source + ": " : source + ": --set ";
    if (const config::Field* field = config::find_field(key)) {
      if (!value.override_text.empty()) provenance.mark_override(key);
      TESSERA_REQUIRE(field->read(value, c), "{}{} = {}: {}", where, key, config::describe(value),
                      field->rule);
      const std::string broken = field->violation(c);
      TESSERA_REQUIRE(broken.empty(), "{}{} = {}: {}", where, key, config::describe(value), broken);
    } else if (config::is_section(key)) {
      if (value.kind == ConfigNode::Kind::Null) continue;  // "log:" with nothing under it
      TESSERA_REQUIRE(value.kind == ConfigNode::Kind::Map, "{}{} = {}: must be a mapping of {} keys",
                      where, key, config::describe(value), key);
      read_section(value, key, c, provenance);
    } else {
      throw InputError(origin(source, value) + config::unknown_key_message(key));
    }
  }
}

// An override must name a known key, so its typo is reported as the key the user typed.
void check_override_key(const config::Override& o, const std::string& source) {
  if (config::find_field(o.key) != nullptr || config::is_section(o.key)) return;
  std::string message = config::unknown_key_message(o.key);
  // Blame the first unknown part ("modle" of "modle.hidden_size") if that is what is wrong.
  std::string prefix;
  for (size_t i = 0; i + 1 < o.path.size(); ++i) {
    prefix += (i ? "." : "") + o.path[i];
    if (config::find_field(prefix) == nullptr && !config::is_section(prefix)) {
      message = config::unknown_key_message(prefix);
      break;
    }
  }
  throw InputError(fmt::format("{}: --set {}: {}", source, o.text, message));
}

Config convert(const std::string& yaml_text, const std::string& source,
               const std::vector<std::string>& overrides) {
  ConfigNode root = config::parse_yaml(yaml_text, source);
  TESSERA_REQUIRE(root.kind == ConfigNode::Kind::Map,
                  "{}: the top level must be a mapping of sections (model, parallel, train, data, "
                  "checkpoint, log), not {}",
                  source, config::describe(root));
  for (const auto& text : overrides) {
    const config::Override o = config::parse_override(text, source);
    check_override_key(o, source);
    config::apply_override(root, o);
  }
  Config c;
  c.source = source;
  config::Provenance provenance(source);
  read_section(root, "", c, provenance);
  if (c.model.ffn_hidden_size == 0) c.model.ffn_hidden_size = 4 * c.model.hidden_size;
  config::check_config(c, provenance);
  return c;
}

std::string read_text_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  TESSERA_REQUIRE(fs::exists(status), "{}: config file not found", path);
  TESSERA_REQUIRE(!fs::is_directory(status), "{}: is a directory, not a config file", path);
  std::ifstream in(path, std::ios::binary);
  TESSERA_REQUIRE(in.good(), "{}: cannot open config file: {}", path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  TESSERA_REQUIRE(!in.bad(), "{}: cannot read config file: {}", path, std::strerror(errno));
  return text.str();
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  return convert(read_text_file(path), path, overrides);
}

Config parse_config_string(const std::string& yaml_text, const std::string& source_name,
                           const std::vector<std::string>& overrides) {
  return convert(yaml_text, source_name, overrides);
}

std::string config_to_yaml(const Config& c) {
  ConfigNode root = ConfigNode::map();
  for (const auto& field : config::schema()) {
    ConfigNode* node = &root;
    size_t start = 0;
    for (auto dot = field.key.find('.'); dot != std::string::npos; dot = field.key.find('.', start)) {
      const std::string section = field.key.substr(start, dot - start);
      ConfigNode* child = node->find(section);
      node = child != nullptr ? child : &node->set(section, ConfigNode::map());
      start = dot + 1;
    }
    node->set(field.key.substr(start), field.write(c));
  }
  const std::string header =
      fmt::format("Tessera config, resolved{}.", c.source.empty() ? "" : " from " + c.source);
  return config::emit_yaml(root, header);
}

}  // namespace tessera
