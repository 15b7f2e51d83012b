// Reading a whole data file into memory, with the one-line errors users see for a bad path.
#pragma once

#include <string>

namespace tessera {

// Throws InputError naming the path when it is missing, not a regular file, or unreadable.
std::string read_file(const std::string& path);

}  // namespace tessera
