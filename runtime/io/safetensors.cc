// safetensors reader (validates every rule of the format before trusting an offset) and
// crash-safe writer. See safetensors.h for the layout.
#include "runtime/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <tuple>
#include <vector>

namespace tessera {
namespace {

using nlohmann::json;

// Tensor bytes are copied as they are, which is only right on a little-endian host.
static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

// The reference implementation refuses larger headers; a corrupt length must not make us
// allocate a huge buffer before anything else has been checked.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Closes a file descriptor on every exit path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and returns close()'s result: some file systems report write errors only here.
  int close_now() {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd);
  }

 private:
  int fd_;
};

[[noreturn]] void throw_io_error(const std::string& file, const char* operation) {
  throw Error(fmt::format("{}: {} failed: {}", file, operation, std::strerror(errno)));
}

void read_exact(int fd, const std::string& path, void* buffer, size_t bytes, uint64_t offset) {
  char* out = static_cast<char*>(buffer);
  while (bytes > 0) {
    const ssize_t got = ::pread(fd, out, bytes, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    TESSERA_REQUIRE(got > 0, "{}: reading {} bytes at offset {} failed: {}", path, bytes, offset,
                    got == 0 ? "unexpected end of file" : std::strerror(errno));
    out += got;
    bytes -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

void write_all(int fd, const std::string& path, const void* buffer, size_t bytes) {
  const char* in = static_cast<const char*>(buffer);
  while (bytes > 0) {
    const ssize_t put = ::write(fd, in, bytes);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) throw_io_error(path, "write");
    in += put;
    bytes -= static_cast<size_t>(put);
  }
}

std::optional<DType> parse_dtype(const std::string& name) {
  for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::I32, DType::U16}) {
    if (dtype_name(dtype) == name) return dtype;
  }
  return std::nullopt;
}

// Bytes a tensor of this shape and dtype occupies; nullopt when that overflows 64 bits.
std::optional<uint64_t> tensor_bytes(const Shape& shape, DType dtype) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  uint64_t bytes = dtype_size(dtype);
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) return std::nullopt;
  }
  return bytes;
}

json parse_header(const std::string& path, std::string text) {
  TESSERA_REQUIRE(!text.empty() && text.front() == '{', "{}: header must start with '{{'", path);
  // Writers may pad the header with trailing spaces so that the data section is aligned.
  text.erase(text.find_last_not_of(' ') + 1);
  json header;
  try {
    header = json::parse(text);
  } catch (const json::parse_error& strict_error) {
    // A complete object followed by other bytes is bad padding rather than bad JSON; the
    // non-strict stream parse stops after the first value, which tells the two apart.
    std::istringstream in(text);
    json prefix;
    try {
      in >> prefix;
    } catch (const json::parse_error&) {
      throw InputError(fmt::format("{}: header is not valid JSON: {}", path, strict_error.what()));
    }
    throw InputError(
        fmt::format("{}: header is padded with bytes other than trailing spaces", path));
  } catch (const json::exception& e) {
    // Well-formed JSON that nlohmann cannot represent, e.g. a number beyond double's range
    // (found by tests/fuzz).
    throw InputError(fmt::format("{}: header is not valid JSON: {}", path, e.what()));
  }
  // JSON would also skip a trailing newline or tab; the format only allows spaces.
  TESSERA_REQUIRE(text.back() == '}', "{}: header is padded with bytes other than trailing spaces",
                  path);
  return header;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

Entry parse_entry(const std::string& path, const std::string& name, const json& value,
                  uint64_t data_bytes) {
  const std::string where = fmt::format("{}: tensor '{}'", path, name);
  TESSERA_REQUIRE(value.is_object(), "{} must be an object with dtype, shape and data_offsets",
                  where);
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    TESSERA_REQUIRE(value.contains(key), "{} has no \"{}\"", where, key);
  }
  Entry entry{name, DType::F32, {}, 0, 0};

  const json& dtype = value.at("dtype");
  TESSERA_REQUIRE(dtype.is_string(), "{} has a dtype that is not a string", where);
  const std::optional<DType> parsed = parse_dtype(dtype.get<std::string>());
  TESSERA_REQUIRE(parsed.has_value(),
                  "{} has unsupported dtype \"{}\" (supported: F32, BF16, F16, I32, U16)", where,
                  dtype.get<std::string>());
  entry.dtype = *parsed;

  const json& shape = value.at("shape");
  const auto is_dim = [](const json& d) {
    return d.is_number_unsigned() &&
           d.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  };
  TESSERA_REQUIRE(shape.is_array() && std::all_of(shape.begin(), shape.end(), is_dim),
                  "{} shape must be an array of non-negative integers", where);
  for (const json& d : shape) entry.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));

  const json& offsets = value.at("data_offsets");
  TESSERA_REQUIRE(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                      offsets[1].is_number_unsigned() &&
                      offsets[0].get<uint64_t>() <= offsets[1].get<uint64_t>(),
                  "{} data_offsets must be [begin, end] with integers 0 <= begin <= end", where);
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  TESSERA_REQUIRE(entry.end <= data_bytes,
                  "{} data_offsets [{}, {}] run past the end of the {}-byte data section", where,
                  entry.begin, entry.end, data_bytes);

  const std::optional<uint64_t> needed = tensor_bytes(entry.shape, entry.dtype);
  TESSERA_REQUIRE(needed == entry.end - entry.begin,
                  "{} data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}", where,
                  entry.begin, entry.end, entry.end - entry.begin, shape_string(entry.shape),
                  dtype_name(entry.dtype),
                  needed ? fmt::format("{} bytes", *needed) : std::string("over 2^64 bytes"));
  return entry;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& value) {
  const auto is_string = [](const auto& item) { return item.is_string(); };
  TESSERA_REQUIRE(value.is_object() && std::all_of(value.begin(), value.end(), is_string),
                  "{}: __metadata__ must be an object of string values", path);
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) metadata[key] = item.get<std::string>();
  return metadata;
}

// The format requires the tensors to tile the data section exactly: no overlaps (one
// tensor's bytes would alias another's), no gaps and no trailing bytes (signs of a
// truncated or corrupted file).
void check_layout(const std::string& path, std::vector<Entry>& entries, uint64_t data_bytes) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& entry : entries) {
    TESSERA_REQUIRE(entry.begin >= covered, "{}: tensors '{}' and '{}' overlap in the data section",
                    path, previous->name, entry.name);
    TESSERA_REQUIRE(entry.begin == covered,
                    "{}: bytes [{}, {}) of the data section belong to no tensor", path, covered,
                    entry.begin);
    covered = entry.end;
    previous = &entry;
  }
  TESSERA_REQUIRE(covered == data_bytes,
                  "{}: bytes [{}, {}) of the data section belong to no tensor", path, covered,
                  data_bytes);
}

void fsync_directory(const std::string& directory) {
  Fd fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) throw_io_error(directory, "open");
  if (::fsync(fd.get()) != 0) throw_io_error(directory, "fsync");
}

}  // namespace

SafetensorsReader::SafetensorsReader(std::string path) : path_(std::move(path)) {
  const std::string& p = path_;
  Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  TESSERA_REQUIRE(fd.get() >= 0, "{}: cannot open: {}", p, std::strerror(errno));
  struct stat st {};
  TESSERA_REQUIRE(::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode), "{}: not a regular file", p);
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  TESSERA_REQUIRE(file_bytes >= 8, "{}: file is {} bytes, shorter than the 8-byte header length", p, file_bytes);

  uint64_t header_bytes = 0;
  read_exact(fd.get(), p, &header_bytes, sizeof header_bytes, 0);
  TESSERA_REQUIRE(header_bytes <= file_bytes - 8, "{}: header length {} is larger than the {} bytes that follow it",
                  p, header_bytes, file_bytes - 8);
  TESSERA_REQUIRE(header_bytes <= kMaxHeaderBytes, "{}: header length {} exceeds the {}-byte limit", p,
                  header_bytes, kMaxHeaderBytes);
  std::string text(header_bytes, '\0');
  read_exact(fd.get(), p, text.data(), text.size(), 8);
  const json header = parse_header(p, std::move(text));

  const uint64_t data_start = 8 + header_bytes;
  const uint64_t data_bytes = file_bytes - data_start;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      metadata_ = parse_metadata(p, value);
    } else {
      entries.push_back(parse_entry(p, name, value, data_bytes));
    }
  }
  check_layout(p, entries, data_bytes);
  for (const Entry& e : entries) entries_.emplace(e.name, Located{e.dtype, e.shape, data_start + e.begin});
}

Tensor SafetensorsReader::read(const std::string& name) const {
  const auto it = entries_.find(name);
  TESSERA_REQUIRE(it != entries_.end(), "{}: has no tensor '{}'", path_, name);
  Tensor tensor = Tensor::empty(it->second.shape, it->second.dtype);
  if (tensor.nbytes() > 0) {
    Fd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    TESSERA_REQUIRE(fd.get() >= 0, "{}: cannot open: {}", path_, std::strerror(errno));
    read_exact(fd.get(), path_, tensor.data<char>(), tensor.nbytes(), it->second.offset);
  }
  return tensor;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

SafetensorsFile read_safetensors(const std::string& path) {
  const SafetensorsReader reader(path);
  SafetensorsFile file;
  file.metadata = reader.metadata();
  for (const std::string& name : reader.names()) file.tensors.emplace(name, reader.read(name));
  return file;
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    TESSERA_CHECK(name != "__metadata__", "{}: '__metadata__' is reserved, not a tensor name",
                  path);
    TESSERA_CHECK(tensor.defined(), "{}: tensor '{}' is undefined", path, name);
    TESSERA_CHECK(tensor.device().kind == DeviceKind::CPU,
                  "{}: tensor '{}' is on a CUDA device; copy it to the host first", path, name);
    header[name] = {{"dtype", dtype_name(tensor.dtype())},
                    {"shape", tensor.shape()},
                    {"data_offsets", json::array({offset, offset + tensor.nbytes()})}};
    offset += tensor.nbytes();
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  // Spaces up to a multiple of 8 keep the data section 8-byte aligned, as the Python
  // library does, so readers that map the file can use the data in place.
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_bytes = text.size();

  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) throw_io_error(tmp, "open");
  try {
    write_all(fd.get(), tmp, &header_bytes, sizeof header_bytes);
    write_all(fd.get(), tmp, text.data(), text.size());
    for (const auto& [name, tensor] : tensors) {
      if (tensor.nbytes() > 0) write_all(fd.get(), tmp, tensor.data<char>(), tensor.nbytes());
    }
    // The data must be on disk before the rename makes it visible under the final name.
    if (::fsync(fd.get()) != 0) throw_io_error(tmp, "fsync");
    if (fd.close_now() != 0) throw_io_error(tmp, "close");
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw_io_error(path, "rename");
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  // The rename itself is only durable once the directory entry is.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  fsync_directory(parent.empty() ? "." : parent.string());
}

}  // namespace tessera
