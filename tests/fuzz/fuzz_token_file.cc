// Fuzzes read_token_file (llm.c token files): the input bytes are written to a scratch file
// (in /dev/shm) and read back. Expected outcomes: the tokens, or tessera::Error. Everything
// else (a crash, another exception type, a sanitizer report, a leak, an allocation beyond
// -malloc_limit_mb because the header's count was trusted) is a finding.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "fuzz_util.h"
#include "runtime/data/token_file.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tessera::fuzz::ScratchCleanup cleanup{tessera::fuzz::scratch_path(".bin")};
  const std::string& path = cleanup.path;
  tessera::fuzz::write_scratch(path, data, size);
  try {
    const std::vector<int32_t> tokens = tessera::read_token_file(path);
    // Accepted files are exactly header + 2 bytes per token, and every token is a uint16.
    if (static_cast<int64_t>(size) != tessera::kTokenFileHeaderBytes + 2 * static_cast<int64_t>(tokens.size())) {
      std::abort();
    }
    for (int32_t t : tokens) {
      if (t < 0 || t > 0xFFFF) std::abort();
    }
  } catch (const tessera::Error&) {
    // InputError: rejected, as it should be.
  }
  return 0;
}
