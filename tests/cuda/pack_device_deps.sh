#!/usr/bin/env bash
# Copies the headers that tests/cuda/device needs and a GPU machine lacks (Eigen, fmt, Catch2 v2)
# into build-device-deps/include, an ignored folder to carry to that machine with the tree.
# Run once on the development machine, from anywhere.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/build-device-deps/include"
rm -rf "$dest"
mkdir -p "$dest"
cp -r /usr/include/eigen3/Eigen "$dest/"
cp -r /usr/include/fmt "$dest/"
mkdir -p "$dest/catch2"
cp /usr/include/catch2/catch.hpp "$dest/catch2/"
du -sh "$dest"
