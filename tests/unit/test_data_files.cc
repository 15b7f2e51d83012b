// Tests of the data files: llm.c token files and dataset loading, with their error messages.
#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <fmt/format.h>

#include "runtime/data/dataset.h"
#include "runtime/data/token_file.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() / fmt::format("tessera_data_{}_{}", getpid(), counter++);
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Overwrites the little-endian int32 at header slot `index`.
void patch_header(const std::string& path, int index, int32_t value) {
  std::string bytes = read_bytes(path);
  for (int i = 0; i < 4; ++i) bytes[4 * index + i] = static_cast<char>(uint32_t(value) >> (8 * i));
  write_bytes(path, bytes);
}

std::vector<int32_t> ramp(int n, int modulo) {
  std::vector<int32_t> tokens(n);
  for (int i = 0; i < n; ++i) tokens[i] = (i * 37) % modulo;
  return tokens;
}

}  // namespace

TEST_CASE("token files round-trip in the llm.c layout", "[data]") {
  TempDir dir;
  const std::string path = dir.file("x.bin");
  const std::vector<int32_t> tokens = {0, 1, 50256, 65535, 258};
  write_token_file(path, tokens);
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() == 1024 + 2 * tokens.size());
  CHECK(bytes.substr(0, 12) == std::string("\x88\xd8\x34\x01\x01\0\0\0\x05\0\0\0", 12));
  CHECK(bytes.substr(1024 + 4, 4) == "\x50\xc4\xff\xff");  // 50256, 65535 little-endian
  CHECK(read_token_file(path) == tokens);
}

TEST_CASE("damaged token files are rejected with one line naming the rule", "[data]") {
  TempDir dir;
  const std::string path = dir.file("x.bin");
  write_token_file(path, ramp(1000, 50257));

  SECTION("missing") {
    const std::string missing = dir.file("none.bin");
    CHECK_THROWS_WITH(read_token_file(missing), missing + ": no such file");
  }
  SECTION("shorter than the header") {
    write_bytes(path, std::string(100, '\0'));
    CHECK_THROWS_WITH(read_token_file(path),
                      path + ": 100 bytes, shorter than the 1024-byte header of an llm.c token "
                             "file");
  }
  SECTION("truncated") {
    fs::resize_file(path, 1024 + 1500);
    CHECK_THROWS_WITH(read_token_file(path), path + ": truncated: header says 1000 tokens (2000 "
                                                    "bytes) but 1500 bytes follow the header");
  }
  SECTION("trailing bytes") {
    fs::resize_file(path, 1024 + 2001);
    CHECK_THROWS_WITH(read_token_file(path), path + ": trailing bytes: header says 1000 tokens "
                                                    "(2000 bytes) but 2001 bytes follow the "
                                                    "header");
  }
  SECTION("wrong magic") {
    patch_header(path, 0, 12345);
    CHECK_THROWS_WITH(read_token_file(path),
                      path + ": bad magic 12345 (expected 20240520, an llm.c token file)");
  }
  SECTION("wrong version") {
    patch_header(path, 1, 2);
    CHECK_THROWS_WITH(read_token_file(path),
                      path + ": unsupported version 2 (expected 1: uint16 tokens)");
  }
  SECTION("negative count") {
    patch_header(path, 2, -3);
    CHECK_THROWS_WITH(read_token_file(path), path + ": negative token count -3 in the header");
  }
}

TEST_CASE("text datasets split like nanoGPT", "[data]") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 100; ++i) text += "to be or not to be\n";  // 1900 bytes
  DataConfig data;
  data.path = dir.file("x.txt");
  write_bytes(data.path, text);

  const Dataset chars = load_dataset(data, "chars", 64);
  CHECK(chars.vocab.kind() == Vocabulary::Kind::Chars);
  CHECK(chars.vocab.size() == 8);  // "\n", " ", b e n o r t
  CHECK(chars.train.size() == 1710);
  CHECK(chars.val.size() == 190);
  std::vector<int32_t> all = chars.train;
  all.insert(all.end(), chars.val.begin(), chars.val.end());
  CHECK(chars.vocab.decode(all) == text);

  const Dataset bytes = load_dataset(data, "bytes", 64);
  CHECK(bytes.vocab.size() == 256);
  CHECK(bytes.train[0] == 't');

  data.val_fraction = 0.0;
  const Dataset no_val = load_dataset(data, "chars", 64);
  CHECK(no_val.train.size() == 1900);
  CHECK(no_val.val.empty());
}

TEST_CASE("text dataset errors name the file and the rule", "[data]") {
  TempDir dir;
  DataConfig data;
  data.path = dir.file("x.txt");

  SECTION("missing file") {
    CHECK_THROWS_WITH(load_dataset(data, "chars", 64), data.path + ": no such file");
  }
  SECTION("empty file") {
    write_bytes(data.path, "");
    CHECK_THROWS_WITH(load_dataset(data, "chars", 64), data.path + ": the file is empty");
  }
  SECTION("seq_length longer than the train split") {
    write_bytes(data.path, std::string(56, 'a'));  // 50 train, 6 val
    CHECK_THROWS_WITH(load_dataset(data, "chars", 64),
                      data.path + ": the train split has 50 tokens, fewer than seq_length + 1 "
                                  "= 65");
  }
  SECTION("val split too short") {
    write_bytes(data.path, std::string(300, 'a'));  // 270 train, 30 val
    CHECK_THROWS_WITH(load_dataset(data, "chars", 64),
                      data.path + ": the val split has 30 tokens, fewer than seq_length + 1 = 65");
  }
  SECTION("integer vocab for text") {
    write_bytes(data.path, "abc");
    CHECK_THROWS_WITH(load_dataset(data, "50257", 2),
                      "model.vocab: a text file needs chars or bytes, not 50257 (integer "
                      "vocabularies come with data.format: tokens)");
  }
  SECTION("unknown vocab") {
    CHECK_THROWS_WITH(load_dataset(data, "words", 64),
                      "model.vocab: 'words' is not chars, bytes or a positive integer");
  }
}

TEST_CASE("token datasets check the vocabulary and take a separate val file", "[data]") {
  TempDir dir;
  DataConfig data;
  data.format = "tokens";
  data.path = dir.file("train.bin");
  write_token_file(data.path, ramp(1000, 300));

  const std::vector<int32_t> tokens = ramp(1000, 300);
  const Dataset split = load_dataset(data, "300", 64);
  CHECK(split.vocab.kind() == Vocabulary::Kind::Tokens);
  CHECK(split.vocab.size() == 300);
  CHECK(split.train.size() == 900);
  CHECK(split.val == std::vector<int32_t>(tokens.begin() + 900, tokens.end()));

  data.val_path = dir.file("val.bin");
  write_token_file(data.val_path, ramp(100, 300));
  const Dataset separate = load_dataset(data, "300", 64);
  CHECK(separate.train == tokens);
  CHECK(separate.val == ramp(100, 300));

  const auto bad = std::find_if(tokens.begin(), tokens.end(), [](int32_t t) { return t >= 250; });
  CHECK_THROWS_WITH(load_dataset(data, "250", 64),
                    fmt::format("{}: token {} at position {} is outside the vocabulary "
                                "(model.vocab = 250)", data.path, *bad, bad - tokens.begin()));
  CHECK_THROWS_WITH(load_dataset(data, "chars", 64),
                    "model.vocab: chars needs data.format: text; a token file needs an integer "
                    "vocab size");
}
