// Inputs the fuzzers (tests/fuzz) found, kept as regression tests: each must be a clean error.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "launcher/config_loader.h"
#include "core/error.h"
#include "runtime/io/safetensors.h"

namespace tessera {

TEST_CASE("a lone comma is a config error, not a hang in yaml-cpp", "[config][fuzz]") {
  CHECK_THROWS_WITH(parse_config_string(",", "bad.yaml"), "bad.yaml: expected one YAML document, found more");
  CHECK_THROWS_AS(parse_config_string("{a: 1},b", "bad.yaml"), InputError);
  CHECK_THROWS_AS(parse_config_string("", "ok.yaml", {"model.arch=,"}), InputError);
}

TEST_CASE("a safetensors header number beyond double is an input error", "[safetensors][fuzz]") {
  const auto path = std::filesystem::temp_directory_path() / "tessera_fuzz_regression.safetensors";
  const std::string header = R"({"a":1e400})";
  {
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), sizeof n);
    out << header;
  }
  CHECK_THROWS_AS(read_safetensors(path.string()), InputError);
  std::filesystem::remove(path);
}

TEST_CASE("shape element counts never overflow", "[tensor][fuzz]") {
  CHECK(shape_numel({int64_t{1} << 62, 4, 0}) == 0);
  CHECK_THROWS_AS(shape_numel({int64_t{1} << 62, 4}), Error);
}

}  // namespace tessera
