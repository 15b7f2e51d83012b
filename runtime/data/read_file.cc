// Whole-file reads for the data layer.
#include "runtime/data/read_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace tessera {

std::string read_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  TESSERA_REQUIRE(std::filesystem::exists(status), "{}: no such file", path);
  TESSERA_REQUIRE(std::filesystem::is_regular_file(status), "{}: not a regular file", path);
  std::ifstream in(path, std::ios::binary);
  TESSERA_REQUIRE(in, "{}: cannot open ({})", path, std::strerror(errno));
  const auto bytes = std::filesystem::file_size(path, ec);
  TESSERA_REQUIRE(!ec, "{}: cannot read its size ({})", path, ec.message());
  std::string content(bytes, '\0');
  in.read(content.data(), static_cast<std::streamsize>(bytes));
  TESSERA_REQUIRE(in.gcount() == static_cast<std::streamsize>(bytes), "{}: read failed ({})", path,
                  std::strerror(errno));
  return content;
}

}  // namespace tessera
