#!/usr/bin/env bash
# Copies what tests/cuda/device needs and a GPU machine may lack into build-device-deps/, an
# ignored folder to carry to that machine with the tree: the headers of Eigen, fmt, Catch2 v2 and
# oneDNN (include/) and oneDNN's library (lib/libdnnl.so.2, ~40 MB, with the OpenCL loader it
# links; run_device_checks.sh puts lib/ on LD_LIBRARY_PATH for the standalone build). Run once
# on the development machine, from anywhere.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/build-device-deps/include"
rm -rf "$root/build-device-deps"
mkdir -p "$dest" "$root/build-device-deps/lib"
cp -r /usr/include/eigen3/Eigen "$dest/"
cp -r /usr/include/fmt "$dest/"
mkdir -p "$dest/catch2"
cp /usr/include/catch2/catch.hpp "$dest/catch2/"
mkdir -p "$dest/oneapi"
cp -r /usr/include/oneapi/dnnl "$dest/oneapi/"
cp /usr/include/dnnl*.h* "$dest/"
lib() { ldconfig -p | awk -v name="$1" '$1 == name && /x86-64/ { print $NF; exit }'; }
cp -L "$(lib libdnnl.so.2)" "$root/build-device-deps/lib/libdnnl.so.2"
# libdnnl links the OpenCL loader (small), which a GPU machine may not have.
cp -L "$(lib libOpenCL.so.1)" "$root/build-device-deps/lib/libOpenCL.so.1"
du -sh "$root/build-device-deps"
