// Cluster files: configs/clusters/*.yaml (through the config tree parser) or JSON (a cluster
// description, or the calibration cache), into the partitioner's ClusterModel.
#include "launcher/cluster_file.h"

#include "core/error.h"
#include "launcher/config_tree.h"
#include "partitioner/machine_model.h"
#include "runtime/data/read_file.h"

namespace tessera {
namespace {

nlohmann::json node_to_json(const config::ConfigNode& n) {
  using K = config::ConfigNode::Kind;
  switch (n.kind) {
    case K::Null: return nullptr;
    case K::Scalar:
      if (!n.quoted) {
        if (auto b = config::scalar_bool(n)) return *b;
        if (auto i = config::scalar_integer<int64_t>(n)) return *i;
        if (auto d = config::scalar_number(n)) return *d;
      }
      return n.text;
    case K::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& item : n.items) a.push_back(node_to_json(item));
      return a;
    }
    case K::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& [k, v] : n.entries) o[k] = node_to_json(v);
      return o;
    }
  }
  return nullptr;
}

}  // namespace

ClusterModel load_cluster(const std::string& path) {
  const bool json = path.size() >= 5 && path.substr(path.size() - 5) == ".json";
  if (json) return load_cluster_json(path);
  nlohmann::json j = node_to_json(config::parse_yaml(read_file(path), path));
  if (j.is_object() && j.contains("tessera_calibration")) {
    TESSERA_REQUIRE(j.contains("cluster"), "{}: calibration cache without a cluster entry", path);
    j = j["cluster"];
  }
  return cluster_from_json(j, path);
}

}  // namespace tessera
