// Reading and writing llm.c token files, with the checks that catch a wrong or damaged file.
#include "runtime/data/token_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "runtime/data/read_file.h"
#include "core/error.h"

namespace tessera {
namespace {

// Explicit little-endian decoding, so the format does not depend on the host's byte order.
int32_t load_le32(const unsigned char* p) {
  return static_cast<int32_t>(uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                              uint32_t(p[3]) << 24);
}

void store_le32(unsigned char* p, int32_t value) {
  const auto v = static_cast<uint32_t>(value);
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

}  // namespace

std::vector<int32_t> read_token_file(const std::string& path) {
  const std::string file = read_file(path);
  const auto file_bytes = static_cast<int64_t>(file.size());
  TESSERA_REQUIRE(file_bytes >= kTokenFileHeaderBytes,
                  "{}: {} bytes, shorter than the {}-byte header of an llm.c token file", path,
                  file_bytes, kTokenFileHeaderBytes);
  const auto* header = reinterpret_cast<const unsigned char*>(file.data());
  const int32_t magic = load_le32(header);
  const int32_t version = load_le32(header + 4);
  const int64_t count = load_le32(header + 8);
  TESSERA_REQUIRE(magic == kTokenFileMagic, "{}: bad magic {} (expected {}, an llm.c token file)",
                  path, magic, kTokenFileMagic);
  TESSERA_REQUIRE(version == kTokenFileVersion,
                  "{}: unsupported version {} (expected {}: uint16 tokens)", path, version,
                  kTokenFileVersion);
  TESSERA_REQUIRE(count >= 0, "{}: negative token count {} in the header", path, count);
  const int64_t body_bytes = file_bytes - kTokenFileHeaderBytes;
  TESSERA_REQUIRE(body_bytes >= 2 * count,
                  "{}: truncated: header says {} tokens ({} bytes) but {} bytes follow the header",
                  path, count, 2 * count, body_bytes);
  TESSERA_REQUIRE(body_bytes == 2 * count,
                  "{}: trailing bytes: header says {} tokens ({} bytes) but {} bytes follow the "
                  "header", path, count, 2 * count, body_bytes);

  const unsigned char* body = header + kTokenFileHeaderBytes;
  std::vector<int32_t> tokens(static_cast<size_t>(count));
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(body[2 * i] | body[2 * i + 1] << 8);
  }
  return tokens;
}

void write_token_file(const std::string& path, const std::vector<int32_t>& tokens) {
  TESSERA_REQUIRE(tokens.size() <= INT32_MAX, "{}: {} tokens do not fit an llm.c header", path,
                  tokens.size());
  unsigned char header[kTokenFileHeaderBytes] = {};
  store_le32(header, kTokenFileMagic);
  store_le32(header + 4, kTokenFileVersion);
  store_le32(header + 8, static_cast<int32_t>(tokens.size()));
  std::vector<unsigned char> body(2 * tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    TESSERA_REQUIRE(tokens[i] >= 0 && tokens[i] <= UINT16_MAX,
                    "{}: token {} at position {} does not fit in uint16", path, tokens[i], i);
    body[2 * i] = static_cast<unsigned char>(tokens[i]);
    body[2 * i + 1] = static_cast<unsigned char>(tokens[i] >> 8);
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  TESSERA_REQUIRE(out, "{}: cannot create ({})", path, std::strerror(errno));
  out.write(reinterpret_cast<const char*>(header), kTokenFileHeaderBytes);
  out.write(reinterpret_cast<const char*>(body.data()), static_cast<std::streamsize>(body.size()));
  out.close();
  TESSERA_REQUIRE(out, "{}: write failed ({})", path, std::strerror(errno));
}

}  // namespace tessera
