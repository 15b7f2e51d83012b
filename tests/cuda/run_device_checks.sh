#!/usr/bin/env bash
# Device checks of the CUDA backend, for a machine with a GPU (the H200 of the `device` tool):
# configures with -DTESSERA_CUDA=ON, builds tessera_cuda_tests and tessera_cuda_gemm_bench, runs
# every test case ([cuda] kernels against their CPU twins, [host] allocator policy), then prints
# the TFLOP/s of 4096^3 cuBLASLt GEMMs in fp32 (TF32 off and on) and bf16. About 3 minutes on a
# 16-core H200 machine, most of it the build.
#
# The GPU machine may lack the project's other dependencies (MPI, yaml-cpp, spdlog, ...). When the
# full project does not configure or build there, the standalone project tests/cuda/device builds
# just these two targets, taking Eigen, fmt and Catch2 headers from build-device-deps/: create that
# folder on the development machine with tests/cuda/pack_device_deps.sh and carry it along.
#
# Usage, from anywhere:  bash tests/cuda/run_device_checks.sh [build-dir (default build-device)]
# Logs are written to $OUT when it is set (the device tool's output folder), else to build-dir.
# Exit status: 0 when a CUDA device was found, every test case ran at least one assertion and
# passed, and the benchmark passed; non-zero on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-device}
log_dir=${OUT:-$build}
mkdir -p "$build" "$log_dir"
jobs=$(nproc 2>/dev/null || echo 8)
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cuda_flags=(-DTESSERA_CUDA=ON -DTESSERA_CUDA_ARCHS=90 -DCMAKE_BUILD_TYPE=Release
            -DTESSERA_CUDA_EMULATOR=OFF)
if [ -x /usr/local/cuda/bin/nvcc ]; then cuda_flags+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc); fi
start=$(date +%s)
step() { echo "== [$(( $(date +%s) - start )) s] $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
  || echo "nvidia-smi failed"
(nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version) | tail -2
cmake --version | head -1
echo "$jobs cores, generator: ${generator[*]:-make}"

bin=""
step "configure the full project (${cuda_flags[*]})"
if cmake -S . -B "$build/full" "${generator[@]}" "${cuda_flags[@]}" \
     >"$log_dir/configure_full.log" 2>&1; then
  step "build tessera_cuda_tests tessera_cuda_gemm_bench (full project)"
  if cmake --build "$build/full" -j "$jobs" --target tessera_cuda_tests tessera_cuda_gemm_bench \
       >"$log_dir/build_full.log" 2>&1; then
    bin="$build/full/tests"
  else
    echo "full build failed; the end of its log:"
    tail -n 25 "$log_dir/build_full.log"
  fi
else
  echo "full configure failed (missing dependencies?):"
  grep -m 5 -iE "error|could not find" "$log_dir/configure_full.log"
fi

if [ -z "$bin" ]; then
  step "configure the standalone project tests/cuda/device (${cuda_flags[*]})"
  if ! cmake -S tests/cuda/device -B "$build/standalone" "${generator[@]}" "${cuda_flags[@]}" \
       >"$log_dir/configure_standalone.log" 2>&1; then
    tail -n 40 "$log_dir/configure_standalone.log"
    exit 1
  fi
  step "build tessera_cuda_tests tessera_cuda_gemm_bench (standalone)"
  if ! cmake --build "$build/standalone" -j "$jobs" --target tessera_cuda_tests \
       tessera_cuda_gemm_bench >"$log_dir/build_standalone.log" 2>&1; then
    tail -n 60 "$log_dir/build_standalone.log"
    exit 1
  fi
  bin="$build/standalone"
fi

# -w NoAssertions fails a case that asserts nothing: without a device every [cuda] case returns
# before its first check, so a run that saw no GPU cannot pass. The device line is required too.
step "tessera_cuda_tests (every case; durations per case)"
timeout 300 "$bin/tessera_cuda_tests" --durations yes -w NoAssertions 2>&1 | tee "$log_dir/cuda_tests.log"
tests_rc=${PIPESTATUS[0]}
if ! grep -q "^CUDA device 0: " "$log_dir/cuda_tests.log"; then
  echo "FAILED: tessera_cuda_tests saw no CUDA device; these checks need one"
  tests_rc=1
fi

step "GEMM benchmark, 4096^3, 20 timed iterations after 3 warm-ups"
timeout 120 "$bin/tessera_cuda_gemm_bench" 4096 20 2>&1 | tee "$log_dir/gemm_bench.log"
bench_rc=${PIPESTATUS[0]}

step "done: tessera_cuda_tests exit $tests_rc, tessera_cuda_gemm_bench exit $bench_rc"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
