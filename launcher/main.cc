// The `tessera` executable: runs the CLI and turns errors into exit codes.
#include "launcher/cli.h"
#include "runtime/host_memory.h"

int main(int argc, char** argv) {
  tessera::retain_freed_host_memory();  // a speed-up only; false under sanitizers, and harmless
  return tessera::run_cli(argc, argv);
}
