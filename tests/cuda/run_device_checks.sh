#!/usr/bin/env bash
# Device checks of the CUDA backend: a verdict in one run on a GPU machine (the H100/H200 of the
# `device` tool), at most 8 minutes on one H100 with 16 cores, ending in ONE summary table (step,
# verdict, numbers) and a non-zero exit when any step failed. Without a GPU it fails at once.
#
#   gpu          nvidia-smi must list a device ("GPU 0: ...")
#   build        configure + build only what the steps need (see "Paths" below)
#   cuda runtime the test binary must see a device (cudaGetDeviceCount > 0)
#   kernels      every tessera_cuda_tests case ([cuda] kernels against their CPU twins, [host]
#                allocator policy) with -w NoAssertions, so a case that returns early fails
#   memcheck     compute-sanitizer --tool memcheck over the [cuda] kernel cases (~[long])
#   racecheck    compute-sanitizer --tool racecheck over the shared-memory kernels' cases
#   gemm         TFLOP/s of 4096^3 cuBLASLt GEMMs, fp32 (TF32 off/on) and bf16
#   nccl version ncclGetVersion through a 10-line probe compiled against the NCCL found
#   backend ops  hook: tessera_cuda_backend_tests (the CUDA op table against the CPU backend)
#   train fp32 / train bf16   hooks: 50 steps of configs/shakespeare_char.yaml on `train.device:
#                cuda` against the same run on the CPU (loss trajectories compared)
#   nccl size-1 / nccl 2 ranks   mpirun -np 1 tessera_nccl_check ops; with NCCL >= 2.30,
#                NCCL_MULTI_RANK_GPU_ENABLE=1 mpirun -np 2 tessera_nccl_check ops and
#                tp 2 and pp 2 training on the one GPU against one rank
#   gpt2 bench   hook: GPT-2 124M shape (12 x 768, 12 heads, seq 1024, vocab 50257) in bf16,
#                tokens/s and MFU against the card's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s)
# A hook runs once its piece exists: `tessera` built with the CUDA backend (the full project
# path) and accepting train.device, the tessera_cuda_backend_tests and tessera_nccl_check
# targets; until then its row says "skipped: <why>" and does not fail the run.
#
# Paths. The full project (MPI, yaml-cpp, spdlog, ...) is tried first; when it does not configure,
# the standalone project tests/cuda/device builds just the kernel tests and the GEMM bench (the
# hooks then skip). Carry with the device tool: build-device-deps (copies of the Eigen, fmt,
# Catch2 and oneDNN headers and of oneDNN's library, 47 MB, made here by
# tests/cuda/pack_device_deps.sh) for the standalone path; nothing else (the tree travels, and
# the build folder is made there).
#
# Usage, from anywhere:  bash tests/cuda/run_device_checks.sh [build-dir (default build-device)]
# Logs go to $OUT when set (the device tool's output folder), else to the build dir.
# TESSERA_NVIDIA_SMI overrides the nvidia-smi command (the CI test sets `false` to force the
# no-GPU path on any machine).
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-device}
log_dir=${OUT:-$build}
mkdir -p "$build" "$log_dir"
smi=${TESSERA_NVIDIA_SMI:-nvidia-smi}
jobs=$(nproc 2>/dev/null || echo 8)
start=$(date +%s)
rows=()
failed=0

say() { echo "== [$(( $(date +%s) - start )) s] $*"; }
# record STEP VERDICT NUMBERS: VERDICT is PASS, FAIL or "skipped: why".
record() {
  rows+=("$1|$2|$3")
  [ "$2" = FAIL ] && failed=1
  say "$1: $2 ${3:+($3)}"
}
summary() {
  echo
  echo "== device check summary ($(( $(date +%s) - start )) s, ${gpu_name:-no GPU})"
  printf '%-16s | %-44s | %s\n' step verdict numbers
  printf '%-16s-+-%-44s-+-%s\n' "----------------" "--------------------------------------------" "-------"
  for row in "${rows[@]}"; do
    IFS='|' read -r s v n <<<"$row"
    printf '%-16s | %-44s | %s\n' "$s" "$v" "$n"
  done
  if [ "$failed" -ne 0 ]; then echo "RESULT: FAILED"; else echo "RESULT: PASSED"; fi
  exit "$failed"
}
skip_rest() {
  for s in "$@"; do record "$s" "skipped: $reason" ""; done
}
after_build=("cuda runtime" kernels memcheck racecheck gemm "nccl version" "backend ops"
             "train fp32" "train bf16" "nccl size-1" "nccl 2 ranks" "gpt2 bench")

# --- gpu -----------------------------------------------------------------------------------------
gpu_line=$("$smi" -L 2>/dev/null | grep -m1 '^GPU 0:')
if [ -z "$gpu_line" ]; then
  echo "no GPU: '$smi -L' lists no device; these checks need one"
  record gpu FAIL "no GPU visible"
  reason="no GPU"; skip_rest build "${after_build[@]}"
  summary
fi
gpu_name=$(echo "$gpu_line" | sed -E 's/^GPU 0: (.*) \(UUID.*/\1/')
record gpu PASS "$gpu_name"
"$smi" --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true

source "$(dirname "$0")/device_checks_lib.sh"

# --- build -------------------------------------------------------------------------------------
build_all
if [ -z "$bin" ]; then
  reason="build failed"; skip_rest "${after_build[@]}"
  summary
fi

# --- kernels -----------------------------------------------------------------------------------
run_kernel_tests
run_sanitizer memcheck "[cuda]~[long]" 240
# Racecheck only sees shared memory: the kernels that use it (block reductions, tiles).
run_sanitizer racecheck \
  "[attention]~[long],[layernorm],[rmsnorm],[cross_entropy],[grad_clip],[embedding],[bias]" 150
run_gemm_bench
check_nccl_version

# --- hooks -------------------------------------------------------------------------------------
run_backend_tests
train_against_cpu fp32 1e-3
train_against_cpu bf16 2e-2
nccl_hooks
gpt2_bench

summary
