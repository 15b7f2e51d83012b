// The calibration cache: its path and reading it.
#include "partitioner/machine_model.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace tessera {

std::string default_calibration_path() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fmt::format("{}/tessera/calibration.json", xdg);
  const char* home = std::getenv("HOME");
  return fmt::format("{}/.cache/tessera/calibration.json", home && *home ? home : ".");
}

ClusterModel load_cluster_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TESSERA_REQUIRE(in.good(), "{}: cannot open ({})", path, std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
  if (j.is_object() && j.contains("tessera_calibration")) {
    TESSERA_REQUIRE(j.contains("cluster"), "{}: calibration cache without a cluster entry", path);
    j = j["cluster"];
  }
  return cluster_from_json(j, path);
}

std::optional<ClusterModel> calibrated_machine(std::string& why) {
  const std::string cache = default_calibration_path();
  if (std::filesystem::exists(cache)) {
    try {
      return load_cluster_json(cache);
    } catch (const InputError& e) {
      why = fmt::format("the calibration cache is unreadable ({}); `tessera plan --calibrate` rewrites it", e.what());
      return std::nullopt;
    }
  }
  why = fmt::format("no machine model (run `tessera plan --calibrate` once to measure this machine into {}, or "
                    "pass --cluster configs/clusters/NAME.yaml)",
                    cache);
  return std::nullopt;
}

}  // namespace tessera
