// Fuzzes parse_config_string with overrides. The input is YAML text, then optionally a NUL
// byte and "--set" overrides separated by NUL bytes ("dotted.key=value"), at most 4.
// Expected outcomes: a Config, or tessera::Error (InputError for bad input). Everything
// else (a crash, another exception type, a sanitizer report, a leak) is a finding.
//
// A config that loads must also survive the documented round trip: config_to_yaml's text
// parses back (without overrides) and emits the same text again.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "launcher/config_loader.h"
#include "core/error.h"

namespace {

constexpr size_t kMaxOverrides = 4;

void split_input(const uint8_t* data, size_t size, std::string& yaml,
                 std::vector<std::string>& overrides) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  size_t nul = input.find('\0');
  yaml = input.substr(0, nul);
  while (nul != std::string::npos && overrides.size() < kMaxOverrides) {
    const size_t next = input.find('\0', nul + 1);
    overrides.push_back(input.substr(nul + 1, next == std::string::npos ? next : next - nul - 1));
    nul = next;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string yaml;
  std::vector<std::string> overrides;
  split_input(data, size, yaml, overrides);

  tessera::Config config;
  try {
    config = tessera::parse_config_string(yaml, "fuzz.yaml", overrides);
  } catch (const tessera::Error&) {
    return 0;  // InputError (or a failed check): the loader rejected the input, as it should.
  }

  // The round trip: what the loader accepted, written out, must be accepted again unchanged.
  const std::string emitted = tessera::config_to_yaml(config);
  std::string reemitted;
  try {
    reemitted = tessera::config_to_yaml(tessera::parse_config_string(emitted, "fuzz.yaml"));
  } catch (const tessera::Error& e) {
    std::fprintf(stderr, "round trip: config_to_yaml output does not load back: %s\n--- yaml:\n%s\n",
                 e.what(), emitted.c_str());
    std::abort();
  }
  if (reemitted != emitted) {
    std::fprintf(stderr, "round trip: emitted YAML changed on reload\n--- first:\n%s\n--- second:\n%s\n",
                 emitted.c_str(), reemitted.c_str());
    std::abort();
  }
  return 0;
}
