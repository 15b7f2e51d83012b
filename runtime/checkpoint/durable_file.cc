// Crash-safe whole-file writes and directory fsyncs (see durable_file.h).
#include "runtime/checkpoint/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace tessera::checkpoint_io {
namespace {

[[noreturn]] void throw_io_error(const std::string& file, const char* operation) {
  throw Error(fmt::format("{}: {} failed: {}", file, operation, std::strerror(errno)));
}

}  // namespace

void fsync_directory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_io_error(directory, "open");
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) throw_io_error(directory, "fsync");
}

void write_file_durably(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_io_error(tmp, "open");
  try {
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
      const ssize_t put = ::write(fd, p, left);
      if (put < 0 && errno == EINTR) continue;
      if (put < 0) throw_io_error(tmp, "write");
      p += put;
      left -= static_cast<size_t>(put);
    }
    // The bytes must be on disk before the rename makes them visible under the final name.
    if (::fsync(fd) != 0) throw_io_error(tmp, "fsync");
    const int rc = ::close(fd);
    if (rc != 0) {
      ::unlink(tmp.c_str());
      throw_io_error(tmp, "close");
    }
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    throw_io_error(path, "rename");
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  fsync_directory(parent.empty() ? "." : parent.string());
}

std::string read_small_file(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TESSERA_REQUIRE(fd >= 0, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(fmt::format("{}: not a regular file", path));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    throw InputError(
        fmt::format("{}: file is {} bytes, over the {}-byte limit", path, st.st_size, max_bytes));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got_total = 0;
  while (got_total < text.size()) {
    const ssize_t got = ::read(fd, text.data() + got_total, text.size() - got_total);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    got_total += static_cast<size_t>(got);
  }
  ::close(fd);
  TESSERA_REQUIRE(got_total == text.size(), "{}: read {} of {} bytes", path, got_total, text.size());
  return text;
}

}  // namespace tessera::checkpoint_io
