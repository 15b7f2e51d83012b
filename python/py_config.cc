// The schema-driven Config bindings: a section ("train", "train.optimizer") is a view whose
// attributes are the schema's keys under it; values convert by the field's schema type.
#include "python/py_config.h"

#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "launcher/config_loader.h"
#include "launcher/config_schema.h"
#include "launcher/config_tree.h"

namespace py = pybind11;

namespace tessera::python {
namespace {

using config::ConfigNode;
using config::Field;

// A section of a Config, borrowed: the Python object keeps the Config alive (keep_alive).
struct ConfigSection {
  Config* config;
  std::string prefix;  // "train.optimizer"
};

std::string join_key(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// A scalar as the field's type reads in Python; null and auto are the struct's 0 or "".
py::object scalar_to_python(const ConfigNode& node, const std::string& type) {
  const bool unset = node.kind == ConfigNode::Kind::Null || node.text == "auto";
  if (type.starts_with("integer")) return unset ? py::int_(0) : py::int_(std::stoll(node.text));
  if (type == "number" || type.find("numbers") != std::string::npos) return py::float_(std::stod(node.text));
  if (type.find("integers") != std::string::npos) return py::int_(std::stoll(node.text));
  if (type == "boolean") return py::bool_(node.text == "true");
  return py::str(node.kind == ConfigNode::Kind::Null ? std::string() : node.text);
}

py::object to_python(const ConfigNode& node, const std::string& type) {
  if (type.find("list") != std::string::npos) {
    py::list out;
    for (const ConfigNode& item : node.items) out.append(scalar_to_python(item, type));
    return out;
  }
  return scalar_to_python(node, type);
}

ConfigNode to_node(const py::handle& value, const std::string& type) {
  if (value.is_none()) return ConfigNode{};
  if (py::isinstance<py::bool_>(value)) return ConfigNode::scalar(value.cast<bool>() ? "true" : "false");
  // 0 is how the struct says auto (parallel.data_parallel_size), as the getter shows it.
  if (type.find("auto") != std::string::npos && py::isinstance<py::int_>(value) && value.cast<int64_t>() == 0) {
    return ConfigNode::scalar("auto");
  }
  if (py::isinstance<py::int_>(value) || py::isinstance<py::float_>(value)) {
    return ConfigNode::scalar(py::str(value).cast<std::string>());
  }
  if (py::isinstance<py::str>(value)) {
    const std::string s = value.cast<std::string>();
    // "" is how the struct says "no path" (the YAML's null).
    if (s.empty() && type.find("null") != std::string::npos) return ConfigNode{};
    return ConfigNode::string(s);
  }
  if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
    std::vector<ConfigNode> items;
    for (const py::handle item : value) items.push_back(to_node(item, type));
    return ConfigNode::sequence(std::move(items));
  }
  throw InputError(fmt::format("config.{}: cannot take a Python {}", type,
                               py::str(value.get_type().attr("__name__")).cast<std::string>()));
}

py::object get_attribute(Config& c, const std::string& prefix, const std::string& name, py::handle owner) {
  const std::string key = join_key(prefix, name);
  if (const Field* f = config::find_field(key)) return to_python(f->write(c), f->type);
  if (config::is_section(key)) {
    // The section view keeps its owner (the Config or the enclosing section) alive.
    py::object view = py::cast(ConfigSection{&c, key});
    py::detail::keep_alive_impl(view, owner);
    return view;
  }
  throw py::attribute_error(fmt::format("config has no field or section '{}'", key));
}

void set_attribute(Config& c, const std::string& prefix, const std::string& name, const py::handle& value) {
  const std::string key = join_key(prefix, name);
  const Field* f = config::find_field(key);
  if (f == nullptr) throw py::attribute_error(fmt::format("config has no field '{}' ({})", key,
                                                          config::unknown_key_message(key)));
  const ConfigNode node = to_node(value, f->type);
  // The field's type and form; the rules between fields are checked when a Trainer starts.
  TESSERA_REQUIRE(f->read(node, c), "{}: {} = {}: {}", c.source.empty() ? "config" : c.source, key,
                  config::describe(node), f->rule);
}

// The keys and sections directly under prefix, for dir() and tab completion.
std::vector<std::string> names_under(const std::string& prefix) {
  std::vector<std::string> out;
  const std::string start = prefix.empty() ? "" : prefix + ".";
  for (const Field& f : config::schema()) {
    if (!f.key.starts_with(start)) continue;
    const std::string rest = f.key.substr(start.size());
    const std::string name = rest.substr(0, rest.find('.'));
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

}  // namespace

void bind_config(py::module_& m) {
  py::class_<ConfigSection>(m, "ConfigSection", "A section of a Config: its fields (from the schema) as attributes")
      .def("__getattr__", [](py::object self, const std::string& name) {
        ConfigSection& s = self.cast<ConfigSection&>();
        return get_attribute(*s.config, s.prefix, name, self);
      })
      .def("__setattr__", [](ConfigSection& s, const std::string& name, const py::object& value) {
        set_attribute(*s.config, s.prefix, name, value);
      })
      .def("__dir__", [](const ConfigSection& s) { return names_under(s.prefix); })
      .def("__repr__", [](const ConfigSection& s) { return "<tessera.ConfigSection " + s.prefix + ">"; });

  py::class_<Config>(m, "Config",
                     "A validated run config. Fields are attributes (config.train.max_steps), every key of the "
                     "YAML schema; edits made in Python are type-checked at once and validated again when a "
                     "Trainer starts. Prefer overrides: they go through the loader's checks with messages naming "
                     "the key.")
      .def_static("from_yaml", &load_config, py::arg("path"), py::arg("overrides") = std::vector<std::string>{},
                  "Load a YAML config with 'dotted.key=value' overrides (as tessera train --set)")
      .def_static("from_string", &parse_config_string, py::arg("yaml_text"), py::arg("source_name") = "<string>",
                  py::arg("overrides") = std::vector<std::string>{})
      .def("to_yaml", &config_to_yaml, "The resolved config as YAML (every field)")
      .def("validate", &validate_config)
      .def("validate_for_world", &validate_for_world, py::arg("world_size"))
      .def_readonly("source", &Config::source)
      .def("__getattr__", [](py::object self, const std::string& name) {
        return get_attribute(self.cast<Config&>(), "", name, self);
      })
      .def("__dir__", [](const Config&) { return names_under(""); })
      .def("__repr__", [](const Config& c) { return "<tessera.Config " + c.source + ">"; });

  m.def("config_keys", [] {
    std::vector<std::string> keys;
    for (const Field& f : config::schema()) keys.push_back(f.key);
    return keys;
  }, "Every dotted key of the config schema, in the order to_yaml writes them");
}

}  // namespace tessera::python
