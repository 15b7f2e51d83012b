// Fuzzes read_safetensors: the input bytes are written to a scratch file (in /dev/shm) and
// read back. Expected outcomes: a SafetensorsFile, or tessera::Error. Everything else (a
// crash, another exception type, a sanitizer report, a leak, an allocation beyond
// -malloc_limit_mb because a size field was trusted) is a finding.
#include <cstdint>
#include <cstdlib>

#include "fuzz_util.h"
#include "core/error.h"
#include "runtime/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tessera::fuzz::ScratchCleanup cleanup{
      tessera::fuzz::scratch_path(".safetensors")};
  const std::string& path = cleanup.path;
  tessera::fuzz::write_scratch(path, data, size);
  try {
    const tessera::SafetensorsFile file = tessera::read_safetensors(path);
    // What was accepted must tile the data section: the tensors' bytes add up to the file's.
    uint64_t tensor_bytes = 0;
    for (const auto& [name, tensor] : file.tensors) {
      if (!tensor.defined()) std::abort();
      tensor_bytes += tensor.nbytes();
    }
    if (tensor_bytes > size) std::abort();
  } catch (const tessera::Error&) {
    // InputError (or a failed check): rejected, as it should be.
  }
  return 0;
}
