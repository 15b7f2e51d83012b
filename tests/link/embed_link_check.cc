// A program that links what an embedding trainer links (Tessera::tessera, and for the control
// binary also Tessera::export) and uses it a little; tests/link/check_link_deps.py reads which
// shared libraries its link line brought in (it is linked with --no-as-needed, so every library
// on the line is in its dynamic section).
#include <tessera/tessera.h>

int main() {
  tessera::Config config;
  tessera::validate_config(config);
  return 0;
}
