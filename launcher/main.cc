// The `tessera` executable: runs the CLI and turns errors into exit codes.
#include <iostream>

#include "launcher/cli.h"
#include "runtime/host_memory.h"

int main(int argc, char** argv) {
  try {
    tessera::retain_freed_host_memory();
  } catch (const std::exception& e) {
    std::cerr << "tessera: warning: " << e.what() << std::endl;
  }
  return tessera::run_cli(argc, argv);
}
