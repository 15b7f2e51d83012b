// The `tessera` executable: runs the CLI and turns errors into exit codes.
#include "launcher/cli.h"

int main(int argc, char** argv) { return tessera::run_cli(argc, argv); }
