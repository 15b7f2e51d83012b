#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (unit tests and multi-rank mpirun tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh "$@"
ctest --test-dir build --output-on-failure -j 2
