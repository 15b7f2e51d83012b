// Helpers shared by the libFuzzer targets: a per-process scratch file for readers that take a
// path, and the one rule every target follows (tessera::Error is an expected outcome).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace tessera::fuzz {

// A file in /dev/shm (memory, no disk wear) named after the pid, so parallel fuzzers
// (-jobs/-workers) do not share one. Falls back to /tmp where /dev/shm is missing.
inline const std::string& scratch_path(const char* suffix) {
  static const std::string path = [suffix] {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/tessera_fuzz_" + std::to_string(getpid()) + suffix;
  }();
  return path;
}

// Replaces the scratch file's contents with the input bytes. A failure here is the harness's,
// not the reader's, so it aborts loudly.
inline void write_scratch(const std::string& path, const uint8_t* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  size_t done = 0;
  while (done < size) {
    const ssize_t put = ::write(fd, data + done, size - done);
    if (put <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    done += static_cast<size_t>(put);
  }
  ::close(fd);
}

// Removes the scratch file when the fuzzer exits normally.
struct ScratchCleanup {
  std::string path;
  ~ScratchCleanup() { ::unlink(path.c_str()); }
};

}  // namespace tessera::fuzz
