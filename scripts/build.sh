#!/usr/bin/env bash
# Configures and builds Tessera (Release) into build/. Extra arguments go to cmake, e.g.
# scripts/build.sh -DTESSERA_SANITIZE=ON -DTESSERA_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$jobs"
