// Small crash-safe file helpers for checkpoints: whole-file writes through a temporary name
// (write, fsync, rename, fsync the directory) and directory fsyncs, so a reader sees either
// the old or the complete new contents, never a torn file.
#pragma once

#include <string>

namespace tessera::checkpoint_io {

// Writes `text` to `path + ".tmp"`, fsyncs it, renames it over `path` and fsyncs the
// directory. Throws tessera::Error naming the file and the failing call.
void write_file_durably(const std::string& path, const std::string& text);

// fsync of a directory: makes the entries created, renamed or removed in it durable.
void fsync_directory(const std::string& directory);

// Reads a whole small file; throws InputError naming the file when it cannot be read or is
// larger than max_bytes (so a corrupt or hostile file cannot make us allocate a huge buffer).
std::string read_small_file(const std::string& path, size_t max_bytes);

}  // namespace tessera::checkpoint_io
