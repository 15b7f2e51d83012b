// llm.c token files: a header of 256 little-endian int32 (magic 20240520, version 1, token
// count), then the tokens as little-endian uint16.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

inline constexpr int32_t kTokenFileMagic = 20240520;
inline constexpr int32_t kTokenFileVersion = 1;
inline constexpr int64_t kTokenFileHeaderBytes = 256 * 4;

// Throws InputError naming the file and the broken rule: missing, shorter than the header,
// bad magic, unsupported version, or a size that does not match the header's count.
std::vector<int32_t> read_token_file(const std::string& path);

// Throws InputError if a token does not fit in uint16 or the file cannot be written.
void write_token_file(const std::string& path, const std::vector<int32_t>& tokens);

}  // namespace tessera
