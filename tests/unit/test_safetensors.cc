// Tests of the safetensors reader and writer: round trips, every rule the reader enforces
// (with its exact message), crash-safe writing, and a file written by the Python library.
#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "runtime/io/safetensors.h"

namespace fs = std::filesystem;
using Catch::Matchers::Message;
using Catch::Matchers::StartsWith;
using tessera::DType;
using tessera::InputError;
using tessera::Tensor;

namespace {

// A fresh directory per test case, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tessera_safetensors_XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string length_prefix(uint64_t length) {
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &length, 8);  // the test hosts are little-endian, like the format
  return bytes;
}

// A safetensors file with this exact header text followed by `data_bytes` zero bytes.
std::string raw_file(const std::string& header, size_t data_bytes) {
  return length_prefix(header.size()) + header + std::string(data_bytes, '\0');
}

// A tensor whose bytes are 0, 1, 2, ... so that any misplaced byte shows.
Tensor patterned(const tessera::Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  for (size_t i = 0; i < t.nbytes(); ++i)
    t.data<unsigned char>()[i] = static_cast<unsigned char>(i * 7 + 3);
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.data<char>(), b.data<char>(), a.nbytes()) == 0);
}

}  // namespace

TEST_CASE("safetensors round trip keeps dtype, shape, bytes and metadata", "[safetensors]") {
  TempDir dir;
  const std::map<std::string, Tensor> tensors = {
      {"f32", patterned({2, 3}, DType::F32)},
      {"bf16", patterned({4}, DType::BF16)},
      {"f16", patterned({2, 2, 2}, DType::F16)},
      {"i32", patterned({3, 1}, DType::I32)},
      {"u16", patterned({5}, DType::U16)},
      {"scalar", patterned({}, DType::F32)},
      {"empty", patterned({0, 3}, DType::F32)},
      {"empty_i32", patterned({0}, DType::I32)},
      {"layer.0.weight", patterned({1, 1, 1, 7}, DType::BF16)},
  };
  const std::map<std::string, std::string> metadata = {{"step", "12"}, {"note", "ünïcode \"q\""}};
  const std::string path = dir.file("model.safetensors");
  tessera::write_safetensors(path, tensors, metadata);

  const tessera::SafetensorsFile file = tessera::read_safetensors(path);
  CHECK(file.metadata == metadata);
  REQUIRE(file.tensors.size() == tensors.size());
  for (const auto& [name, expected] : tensors) {
    INFO("tensor " << name);
    const Tensor& got = file.tensors.at(name);
    CHECK(got.dtype() == expected.dtype());
    CHECK(got.shape() == expected.shape());
    CHECK(same_bytes(got, expected));
  }

  // Header padded with spaces to a multiple of 8, so the data section is 8-byte aligned.
  const std::string bytes = read_bytes(path);
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  CHECK(header_length % 8 == 0);
  CHECK(bytes.substr(8, 1) == "{");
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("safetensors without tensors or metadata round trips", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("empty.safetensors");
  tessera::write_safetensors(path, {}, {});
  const tessera::SafetensorsFile file = tessera::read_safetensors(path);
  CHECK(file.tensors.empty());
  CHECK(file.metadata.empty());
  CHECK(read_bytes(path) == raw_file("{}      ", 0));
}

TEST_CASE("safetensors writer replaces an existing file and leaves no temp file", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  tessera::write_safetensors(path, {{"a", Tensor::full({3}, 1.0f)}}, {{"step", "1"}});
  // A stale temp file from a crashed writer must not get in the way.
  write_bytes(path + ".tmp", "partial");
  tessera::write_safetensors(path, {{"b", Tensor::full({2}, 2.0f)}}, {{"step", "2"}});

  const tessera::SafetensorsFile file = tessera::read_safetensors(path);
  CHECK(file.metadata.at("step") == "2");
  REQUIRE(file.tensors.count("b") == 1);
  CHECK(file.tensors.count("a") == 0);
  CHECK(file.tensors.at("b").f32()[1] == 2.0f);
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("safetensors writer fails cleanly when it cannot create the file", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("missing/ckpt.safetensors");
  REQUIRE_THROWS_MATCHES(tessera::write_safetensors(path, {{"a", Tensor::full({1}, 1.0f)}}, {}),
                         tessera::Error,
                         Message(path + ".tmp: open failed: No such file or directory"));
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("safetensors reader accepts trailing spaces in the header", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("padded.safetensors");
  write_bytes(path,
              raw_file(R"({"x":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}         )", 4));
  const tessera::SafetensorsFile file = tessera::read_safetensors(path);
  CHECK(file.tensors.at("x").i32()[0] == 0);
}

TEST_CASE("safetensors reader rejects malformed files with one clear line", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  // Writes `bytes`, reads them back, and expects InputError with exactly `message`.
  const auto rejects = [&](const std::string& bytes, const std::string& message) {
    write_bytes(path, bytes);
    REQUIRE_THROWS_MATCHES(tessera::read_safetensors(path), InputError,
                           Message(path + ": " + message));
  };
  const std::string a8 = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  SECTION("missing file") {
    REQUIRE_THROWS_MATCHES(tessera::read_safetensors(dir.file("nope")), InputError,
                           Message(dir.file("nope") + ": cannot open: No such file or directory"));
  }
  SECTION("not a regular file") {
    REQUIRE_THROWS_MATCHES(tessera::read_safetensors(dir.path().string()), InputError,
                           Message(dir.path().string() + ": not a regular file"));
  }
  SECTION("shorter than the length field") {
    rejects(std::string("{}\0\0\0", 5), "file is 5 bytes, shorter than the 8-byte header length");
  }
  SECTION("header length larger than the file") {
    rejects(length_prefix(1000) + "{}        ",
            "header length 1000 is larger than the 10 bytes that follow it");
  }
  SECTION("header length over the limit") {
    // Sparse, so the 100 MB file costs no disk.
    write_bytes(path, length_prefix(100'000'001));
    fs::resize_file(path, 100'000'016);
    REQUIRE_THROWS_MATCHES(
        tessera::read_safetensors(path), InputError,
        Message(path + ": header length 100000001 exceeds the 100000000-byte limit"));
  }
  SECTION("invalid JSON") {
    write_bytes(path, raw_file(R"({"a": {"dtype": )", 0));
    // The rest of the line is nlohmann's description of the error, which names the byte.
    REQUIRE_THROWS_AS(tessera::read_safetensors(path), InputError);
    CHECK_THROWS_WITH(tessera::read_safetensors(path),
                      StartsWith(path + ": header is not valid JSON: [json.exception.parse_error"));
  }
  SECTION("leading padding") { rejects(raw_file("  {}", 0), "header must start with '{'"); }
  SECTION("padding other than spaces") {
    rejects(raw_file(std::string("{}\0\0\0\0\0\0", 8), 0),
            "header is padded with bytes other than trailing spaces");
    rejects(raw_file("{}  \n", 0), "header is padded with bytes other than trailing spaces");
  }
  SECTION("entry that is not an object") {
    rejects(raw_file(R"({"a":3})", 0),
            "tensor 'a' must be an object with dtype, shape and data_offsets");
  }
  SECTION("missing dtype, shape or data_offsets") {
    rejects(raw_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8),
            "tensor 'a' has no \"dtype\"");
    rejects(raw_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8),
            "tensor 'a' has no \"shape\"");
    rejects(raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8),
            "tensor 'a' has no \"data_offsets\"");
  }
  SECTION("unknown dtype") {
    rejects(raw_file(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8),
            "tensor 'a' has unsupported dtype \"F64\" (supported: F32, BF16, F16, I32, U16)");
    rejects(raw_file(R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", 4),
            "tensor 'a' has a dtype that is not a string");
  }
  SECTION("bad shape") {
    for (const char* shape : {"[-1]", "[1.5]", "2", "[\"2\"]"}) {
      rejects(raw_file(fmt::format(R"({{"a":{{"dtype":"F32","shape":{},"data_offsets":[0,0]}}}})",
                                   shape),
                       0),
              "tensor 'a' shape must be an array of non-negative integers");
    }
  }
  SECTION("bad data_offsets") {
    for (const char* offsets : {"[8,4]", "[0]", "[0,4,8]", "[-4,4]", "{}"}) {
      rejects(raw_file(fmt::format(R"({{"a":{{"dtype":"F32","shape":[1],"data_offsets":{}}}}})",
                                   offsets),
                       8),
              "tensor 'a' data_offsets must be [begin, end] with integers 0 <= begin <= end");
    }
  }
  SECTION("offsets out of range") {
    rejects(raw_file("{" + a8 + "}", 4),
            "tensor 'a' data_offsets [0, 8] run past the end of the 4-byte data section");
  }
  SECTION("offsets not matching shape and dtype") {
    rejects(raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
            "tensor 'a' data_offsets [0, 8] hold 8 bytes but shape [3] of F32 needs 12 bytes");
    rejects(raw_file(R"({"a":{"dtype":"BF16","shape":[],"data_offsets":[0,0]}})", 0),
            "tensor 'a' data_offsets [0, 0] hold 0 bytes but shape [] of BF16 needs 2 bytes");
    rejects(raw_file(
                R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0),
            "tensor 'a' data_offsets [0, 0] hold 0 bytes but shape [4294967296, 4294967296] of F32 "
            "needs over 2^64 bytes");
  }
  SECTION("overlapping tensors") {
    rejects(raw_file("{" + a8 + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
            "tensors 'a' and 'b' overlap in the data section");
  }
  SECTION("gap between tensors") {
    rejects(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                     12),
            "bytes [4, 8) of the data section belong to no tensor");
  }
  SECTION("trailing bytes after the last tensor") {
    rejects(raw_file("{" + a8 + "}", 12), "bytes [8, 12) of the data section belong to no tensor");
  }
  SECTION("metadata that is not a map of strings") {
    rejects(raw_file(R"({"__metadata__":{"step":1}})", 0),
            "__metadata__ must be an object of string values");
    rejects(raw_file(R"({"__metadata__":"x"})", 0),
            "__metadata__ must be an object of string values");
  }
}

TEST_CASE("safetensors reads a file written by the Python library", "[safetensors]") {
  // Written by tests/reference/make_fixtures.py with safetensors.torch.save_file, which lays
  // the data out by alignment rather than by name.
  const tessera::SafetensorsFile file =
      tessera::read_safetensors(TESSERA_SOURCE_DIR "/tests/fixtures/python_sample.safetensors");
  CHECK(file.metadata == std::map<std::string, std::string>{
                             {"source", "tests/reference/make_fixtures.py"}, {"format", "pt"}});
  REQUIRE(file.tensors.size() == 7);

  const Tensor& f32 = file.tensors.at("f32");
  CHECK(f32.shape() == tessera::Shape{2, 3});
  CHECK(std::vector<float>(f32.f32(), f32.f32() + 6) ==
        std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f});

  // bf16 and f16 bit patterns of 1, -2, 0.5 (and f16's largest finite value, 65504).
  const Tensor& bf16 = file.tensors.at("bf16");
  CHECK(bf16.dtype() == DType::BF16);
  CHECK(std::vector<uint16_t>(bf16.data<uint16_t>(), bf16.data<uint16_t>() + 3) ==
        std::vector<uint16_t>{0x3F80, 0xC000, 0x3F00});
  const Tensor& f16 = file.tensors.at("f16");
  CHECK(f16.dtype() == DType::F16);
  CHECK(f16.shape() == tessera::Shape{2, 2});
  CHECK(std::vector<uint16_t>(f16.data<uint16_t>(), f16.data<uint16_t>() + 4) ==
        std::vector<uint16_t>{0x3C00, 0xC000, 0x3800, 0x7BFF});

  const Tensor& i32 = file.tensors.at("i32");
  CHECK(std::vector<int32_t>(i32.i32(), i32.i32() + 4) ==
        std::vector<int32_t>{-1, 2, 3, 2147483647});
  const Tensor& u16 = file.tensors.at("u16");
  CHECK(u16.dtype() == DType::U16);
  CHECK(std::vector<uint16_t>(u16.data<uint16_t>(), u16.data<uint16_t>() + 3) ==
        std::vector<uint16_t>{0, 1, 65535});

  const Tensor& scalar = file.tensors.at("scalar");
  CHECK(scalar.ndim() == 0);
  CHECK(scalar.f32()[0] == 3.25f);
  const Tensor& empty = file.tensors.at("empty");
  CHECK(empty.shape() == tessera::Shape{0, 4});
  CHECK(empty.numel() == 0);
}

TEST_CASE("safetensors reads the PyTorch reference fixtures consistently", "[safetensors]") {
  for (const char* model : {"gpt", "mlp"}) {
    INFO("model " << model);
    const tessera::SafetensorsFile file = tessera::read_safetensors(
        fmt::format("{}/tests/fixtures/{}_reference.safetensors", TESSERA_SOURCE_DIR, model));
    CHECK(file.metadata.at("arch") == model);
    const int64_t batch = std::stoll(file.metadata.at("batch"));
    const int64_t seq = std::stoll(file.metadata.at("seq_length"));
    const int64_t vocab = std::stoll(file.metadata.at("vocab_size"));
    CHECK(file.tensors.at("batch.tokens").dtype() == DType::I32);
    CHECK(file.tensors.at("batch.tokens").shape() == tessera::Shape{batch, seq});
    CHECK(file.tensors.at("batch.targets").shape() == tessera::Shape{batch, seq});
    CHECK(file.tensors.at("logits").shape() == tessera::Shape{batch, seq, vocab});
    CHECK(file.tensors.at("losses_10steps").shape() == tessera::Shape{10});
    CHECK(file.tensors.at("grad_norms_10steps").shape() == tessera::Shape{10});
    // The first recorded step is the same forward pass as `loss`.
    CHECK(file.tensors.at("losses_10steps").f32()[0] == file.tensors.at("loss").f32()[0]);
    int params = 0;
    for (const auto& [name, tensor] : file.tensors) {
      if (name.rfind("params.", 0) != 0) continue;
      ++params;
      const std::string grad = "grads." + name.substr(7);
      INFO("parameter " << name);
      REQUIRE(file.tensors.count(grad) == 1);
      CHECK(file.tensors.at(grad).shape() == tensor.shape());
    }
    CHECK(params == (std::string(model) == "gpt" ? 29 : 9));
  }
}
