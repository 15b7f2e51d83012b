# The steps of run_device_checks.sh (sourced by it; uses its record/say, $build, $log_dir, $jobs,
# $gpu_name, $start). Each step records one summary row: PASS, FAIL or "skipped: <why>", and
# numbers.

# Seconds a step may run: its own limit, cut to what is left of the whole run's 8 minutes (a
# step that runs out times out and fails, so the budget cannot be overrun silently).
budget=480
limit() {
  local left=$(( budget - ($(date +%s) - start) ))
  [ "$1" -lt "$left" ] && left=$1
  [ "$left" -lt 1 ] && left=1
  echo "$left"
}

# Configures and builds the full project (tessera_cuda_tests, tessera_cuda_gemm_bench, and for the
# hooks `tessera`, tessera_cuda_backend_tests and tessera_nccl_check when the project has them),
# else the standalone tests/cuda/device project. Sets bin (folder of the kernel test binaries),
# tessera, backend_tests, nccl_check.
build_all() {
  local flags=(-DTESSERA_CUDA=ON -DTESSERA_CUDA_ARCHS=90 -DCMAKE_BUILD_TYPE=Release
               -DTESSERA_CUDA_EMULATOR=OFF)
  local gen=() t0 targets=(tessera_cuda_tests tessera_cuda_gemm_bench) why=""
  if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
  if [ -x /usr/local/cuda/bin/nvcc ]; then flags+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc); fi
  t0=$(date +%s)
  bin="" tessera="" nccl_check="" backend_tests=""
  if cmake -S . -B "$build/full" "${gen[@]}" "${flags[@]}" >"$log_dir/configure_full.log" 2>&1; then
    local help
    help=$(cmake --build "$build/full" --target help 2>/dev/null)
    # The CLI is the biggest target: built only when its config has train.device (the hooks'
    # precondition), to stay within the time budget otherwise.
    if grep -q '"train.device"' launcher/config_schema.cc &&
       grep -qE "(^|\.\.\. )tessera(:| |$)" <<<"$help"; then targets+=(tessera); fi
    for t in tessera_cuda_backend_tests tessera_nccl_check; do
      if grep -qE "(^|\.\.\. )$t(:| |$)" <<<"$help"; then targets+=("$t"); fi
    done
    say "build ${targets[*]} (full project, $jobs jobs)"
    if timeout "$(limit 330)" cmake --build "$build/full" -j "$jobs" --target "${targets[@]}" \
         >"$log_dir/build_full.log" 2>&1; then
      bin="$build/full/tests"
      tessera=$(find "$build/full" -name tessera -type f -perm -u+x | head -1)
      nccl_check=$(find "$build/full" -name tessera_nccl_check -type f -perm -u+x | head -1)
      backend_tests=$(find "$build/full" -name tessera_cuda_backend_tests -type f -perm -u+x | head -1)
      record build PASS "full project: ${targets[*]}, $(( $(date +%s) - t0 )) s"
      return
    fi
    why="full build failed or ran out of time ($log_dir/build_full.log)"
    tail -n 25 "$log_dir/build_full.log"
  else
    why="full configure failed: $(grep -m1 -iE 'could not find|error' "$log_dir/configure_full.log" | cut -c1-80)"
  fi
  say "$why; building the standalone project tests/cuda/device"
  if cmake -S tests/cuda/device -B "$build/standalone" "${gen[@]}" "${flags[@]}" \
       >"$log_dir/configure_standalone.log" 2>&1 &&
     timeout "$(limit 240)" cmake --build "$build/standalone" -j "$jobs" \
       --target tessera_cuda_tests tessera_cuda_gemm_bench >"$log_dir/build_standalone.log" 2>&1; then
    bin="$build/standalone"
    # oneDNN and its OpenCL loader from the carried copies, when the machine has none.
    export LD_LIBRARY_PATH="$PWD/build-device-deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    record build PASS "standalone (${why}), $(( $(date +%s) - t0 )) s"
  else
    tail -n 40 "$log_dir"/*standalone.log
    record build FAIL "${why}; standalone failed too"
  fi
}

# Catch2's closing line: "All tests passed (...)" or the "test cases: ..." count.
catch_result() {
  grep -E "^(All tests passed|test cases:)" "$1" | tail -1 | tr -s ' '
}

run_kernel_tests() {
  local log="$log_dir/cuda_tests.log" rc
  say "tessera_cuda_tests (every case, -w NoAssertions)"
  timeout "$(limit 300)" "$bin/tessera_cuda_tests" --durations yes -w NoAssertions >"$log" 2>&1
  rc=$?
  local device
  device=$(grep -m1 "^CUDA device 0: " "$log")
  if [ -n "$device" ]; then
    record "cuda runtime" PASS "${device#CUDA device 0: }"
  else
    record "cuda runtime" FAIL "cudaGetDeviceCount saw no device: $(grep -m1 -A1 'no CUDA device' "$log" | tail -1)"
    rc=1
  fi
  if [ "$rc" -eq 0 ]; then record kernels PASS "$(catch_result "$log")"
  else
    grep -B2 -A8 "FAILED" "$log" | head -40
    record kernels FAIL "exit $rc: $(catch_result "$log")"
  fi
}

# The CUDA backend's op table against the CPU backend (tessera_cuda_backend_tests), once built.
run_backend_tests() {
  local log="$log_dir/cuda_backend_tests.log"
  if [ -z "$backend_tests" ]; then
    record "backend ops" "skipped: no tessera_cuda_backend_tests target (CUDA backend not built)" ""
    return
  fi
  say "tessera_cuda_backend_tests (-w NoAssertions)"
  if timeout "$(limit 180)" "$backend_tests" -w NoAssertions >"$log" 2>&1; then
    record "backend ops" PASS "$(catch_result "$log")"
  else
    grep -B2 -A8 "FAILED" "$log" | head -40
    record "backend ops" FAIL "$(catch_result "$log")"
  fi
}

# run_sanitizer TOOL FILTER SECONDS: the kernel cases matching FILTER under compute-sanitizer.
run_sanitizer() {
  local tool=$1 filter=$2 limit=$3 log="$log_dir/sanitizer_$1.log" rc exe
  exe=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
  if [ -z "$exe" ]; then record "$tool" FAIL "compute-sanitizer not found"; return; fi
  say "compute-sanitizer --tool $tool: $filter (limit $limit s)"
  timeout "$(limit "$limit")" "$exe" --tool "$tool" --error-exitcode 99 "$bin/tessera_cuda_tests" "$filter" \
    -w NoAssertions >"$log" 2>&1
  rc=$?
  local found
  found=$(grep -oE "(ERROR|RACECHECK) SUMMARY: .*" "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then record "$tool" PASS "$found; $(catch_result "$log")"
  elif [ "$rc" -eq 124 ]; then record "$tool" FAIL "timed out after $limit s"
  else
    grep -m 20 -E "=========|FAILED" "$log"
    record "$tool" FAIL "exit $rc: ${found:-see $log}"
  fi
}

run_gemm_bench() {
  local log="$log_dir/gemm_bench.log"
  say "GEMM benchmark, 4096^3"
  # Without a device the benchmark exits 0 with no result lines: those are required.
  if timeout "$(limit 120)" "$bin/tessera_cuda_gemm_bench" 4096 20 >"$log" 2>&1 &&
     grep -q "TFLOP/s" "$log"; then
    record gemm PASS "$(awk '/TFLOP\/s/ { for (i = 1; i <= NF; ++i) if ($i == "TFLOP/s") v = v sep $(i - 1); sep = " / " } END { print v " TFLOP/s (fp32, tf32, bf16)" }' "$log")"
  else
    cat "$log"
    record gemm FAIL "see $log"
  fi
}

# ncclGetVersion from a probe built against the NCCL on the machine. Sets nccl_code.
check_nccl_version() {
  local inc lib dir
  nccl_code=0
  for dir in /usr/include /usr/local/cuda/include ${CUDA_HOME:+$CUDA_HOME/include}; do
    [ -f "$dir/nccl.h" ] && inc=$dir && break
  done
  for dir in /usr/lib/x86_64-linux-gnu /usr/local/cuda/lib64 /usr/local/cuda/lib; do
    [ -e "$dir/libnccl.so" ] || [ -e "$dir/libnccl.so.2" ] && lib=$dir && break
  done
  if [ -z "${inc:-}" ] || [ -z "${lib:-}" ]; then record "nccl version" FAIL "no NCCL (nccl.h, libnccl) found"; return; fi
  local probe="$build/nccl_version"
  if ! printf '%s\n' '#include <nccl.h>' '#include <cstdio>' \
      'int main() { int v = 0; ncclResult_t r = ncclGetVersion(&v);' \
      '  if (r != ncclSuccess) { std::printf("%s\n", ncclGetErrorString(r)); return 1; }' \
      '  std::printf("%d\n", v); return 0; }' |
      c++ -x c++ - -I"$inc" -I/usr/local/cuda/include -L"$lib" -l:libnccl.so.2 -o "$probe" 2>"$log_dir/nccl_probe.log"; then
    record "nccl version" FAIL "probe did not build ($log_dir/nccl_probe.log)"; return
  fi
  nccl_code=$(LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}" "$probe") || { record "nccl version" FAIL "ncclGetVersion: $nccl_code"; nccl_code=0; return; }
  nccl_version="$((nccl_code / 10000)).$((nccl_code / 100 % 100)).$((nccl_code % 100))"
  record "nccl version" PASS "$nccl_version ($lib)"
}

# Why the training hooks cannot run yet, or nothing when they can.
training_missing() {
  if [ -z "$tessera" ]; then echo "no tessera binary (the full project did not build)"
  elif ! "$tessera" config --markdown 2>/dev/null | grep -q 'train\.device'; then
    echo "tessera has no train.device (CUDA backend not in this build)"
  fi
}

# train RUN DEVICE PRECISION [LAUNCHER... --] [TESSERA ARGS...]: 50 steps of the recipe, metrics
# to RUN.jsonl; words before a `--` go in front of tessera (mpirun and its options).
train() {
  local run=$1 device=$2 precision=$3 prefix=() extra=()
  shift 3
  if [[ " $* " == *" -- "* ]]; then
    while [ "$1" != "--" ]; do prefix+=("$1"); shift; done
    shift
  fi
  extra=("$@")
  timeout "$(limit 150)" "${prefix[@]}" "$tessera" train configs/shakespeare_char.yaml \
    --set train.max_steps=50 --set train.device="$device" --set train.precision="$precision" \
    --set train.eval_interval=0 --set log.interval=1 --set log.metrics="$log_dir/$run.jsonl" \
    --set checkpoint.interval=0 --set checkpoint.dir="$build/checkpoints/$run" "${extra[@]}" \
    >"$log_dir/$run.log" 2>&1
}

# compare A.jsonl B.jsonl TOL: the largest relative loss difference over the common steps.
compare_losses() {
  paste <(grep -oE '"loss": *[-0-9.eE+]+' "$1" | awk '{ print $2 }') \
        <(grep -oE '"loss": *[-0-9.eE+]+' "$2" | awk '{ print $2 }') |
    awk -v tol="$3" 'NF == 2 { d = $1 - $2; if (d < 0) d = -d; r = d / ($1 > 0 ? $1 : 1);
                              if (r > m) m = r; n++; a = $1; b = $2 }
                     END { printf "%d steps, max rel loss diff %.1e (tol %s), final %.4f vs %.4f",
                                  n, m, tol, a, b; exit !(n >= 50 && m <= tol) }'
}

# train_against_cpu PRECISION TOL. Tolerances: fp32 1e-3, since cuBLAS and Eigen sum in other
# orders (~1e-6 relative per op) and 50 AdamW steps amplify that to ~1e-4 at most, while a wrong
# kernel moves the loss by 1e-2 within a few steps; bf16 2e-2, as each bf16 rounding (2^-9) of
# an activation happens at different points of the two backends' fusions.
train_against_cpu() {
  local precision=$1 tol=$2 missing numbers
  missing=$(training_missing)
  if [ -n "$missing" ]; then record "train $precision" "skipped: $missing" ""; return; fi
  say "training 50 steps, $precision, CPU then CUDA"
  if ! train "train_cpu_$precision" cpu "$precision"; then
    record "train $precision" FAIL "CPU run failed ($log_dir/train_cpu_$precision.log)"; return
  fi
  if ! train "train_cuda_$precision" cuda "$precision"; then
    tail -5 "$log_dir/train_cuda_$precision.log"
    record "train $precision" FAIL "CUDA run failed ($log_dir/train_cuda_$precision.log)"; return
  fi
  if numbers=$(compare_losses "$log_dir/train_cpu_$precision.jsonl" \
                 "$log_dir/train_cuda_$precision.jsonl" "$tol"); then
    record "train $precision" PASS "$numbers"
  else
    record "train $precision" FAIL "$numbers"
  fi
}

# The NCCL communicator's checks (tessera_nccl_check, tests/cuda/backend/nccl_check.cc, built
# by the full project): `ops` runs every operation on a one-rank communicator; with NCCL >= 2.30,
# which lets two ranks share a GPU, `ops` on two ranks, then tp 2 and pp 2 (1F1B, NCCL's grouped
# send/recv) training against the one-rank CUDA run of "train fp32". The program prints "PASS:
# every NCCL check holds" or lists its failures.
nccl_result() { grep -E "^(PASS|FAIL|FAILED)|error on rank" "$1" | head -1 | cut -c1-100; }
nccl_hooks() {
  if [ -z "$nccl_check" ]; then
    record "nccl size-1" "skipped: no tessera_nccl_check target (NCCL communicator not built)" ""
    record "nccl 2 ranks" "skipped: no tessera_nccl_check target (NCCL communicator not built)" ""
    return
  fi
  if ! command -v mpirun >/dev/null 2>&1; then
    record "nccl size-1" "skipped: no mpirun" ""
    record "nccl 2 ranks" "skipped: no mpirun" ""
    return
  fi
  local log="$log_dir/nccl_size1.log"
  if timeout "$(limit 60)" mpirun --allow-run-as-root -np 1 "$nccl_check" ops >"$log" 2>&1 &&
     grep -q "^PASS" "$log"; then
    record "nccl size-1" PASS "$(nccl_result "$log")"
  else
    tail -20 "$log"
    record "nccl size-1" FAIL "$(nccl_result "$log")"
  fi
  if [ "$nccl_code" -lt 23000 ]; then
    record "nccl 2 ranks" "skipped: NCCL ${nccl_version:-unknown} < 2.30 puts no two ranks on one GPU" ""
    return
  fi
  local mpi=(mpirun --allow-run-as-root --oversubscribe -np 2 -x NCCL_MULTI_RANK_GPU_ENABLE=1)
  log="$log_dir/nccl_ranks2.log"
  if ! timeout "$(limit 120)" "${mpi[@]}" "$nccl_check" ops >"$log" 2>&1 || ! grep -q "^PASS" "$log"; then
    tail -20 "$log"
    record "nccl 2 ranks" FAIL "ops on 2 ranks: $(nccl_result "$log")"
    return
  fi
  local numbers="ops on 2 ranks passed" layout missing
  missing=$(training_missing)
  if [ -n "$missing" ] || [ ! -f "$log_dir/train_cuda_fp32.jsonl" ]; then
    record "nccl 2 ranks" PASS "$numbers; tp2/pp2 training skipped: ${missing:-no one-rank CUDA run}"
    return
  fi
  for layout in tensor pipeline; do
    if ! train "train_cuda_${layout}2" cuda fp32 "${mpi[@]}" -- \
         --set parallel.${layout}_model_parallel_size=2 ||
       ! numbers+="; ${layout} 2: $(compare_losses "$log_dir/train_cuda_fp32.jsonl" \
                                     "$log_dir/train_cuda_${layout}2.jsonl" 1e-3)"; then
      record "nccl 2 ranks" FAIL "${numbers}; ${layout} 2 failed ($log_dir/train_cuda_${layout}2.log)"
      return
    fi
  done
  record "nccl 2 ranks" PASS "$numbers"
}

# The card's dense bf16 tensor-core peak in TFLOP/s (0 when unknown) and its name.
bf16_roof() {
  case "$gpu_name" in
    *H100*PCIe*) echo "756 H100 PCIe dense bf16" ;;
    *H100*|*H200*) echo "989 H100/H200 SXM dense bf16" ;;
    *A100*) echo "312 A100 dense bf16" ;;
    *) echo "0 unknown card" ;;
  esac
}

# GPT-2 124M shape in bf16 on random tokens: the median tokens/s of steps 11..30 and the MFU at
# 6 N + 12 L C T FLOPs per token (N = 12 L C^2 + 13 L C + V C + 2 C, the LM head tied to wte;
# the attention term as in nanoGPT and llm.c). Target: >= 45 % MFU; recorded, not enforced.
gpt2_bench() {
  local missing
  missing=$(training_missing)
  if [ -n "$missing" ]; then record "gpt2 bench" "skipped: $missing" ""; return; fi
  if ! command -v python3 >/dev/null 2>&1; then
    record "gpt2 bench" "skipped: python3 is needed to write the token file" ""; return
  fi
  local dir="$build/gpt2" L=12 C=768 T=1024 V=50257 B=8
  mkdir -p "$dir"
  # An llm.c token file: 256 int32 header (magic, version 1, count), then uint16 tokens.
  python3 - "$dir/tokens.bin" "$V" <<'PY'
import random, struct, sys
n, vocab = 1 << 20, int(sys.argv[2])
random.seed(1)
header = [20240520, 1, n] + [0] * 253
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", *header))
    f.write(struct.pack("<%dH" % n, *(random.randrange(vocab) for _ in range(n))))
PY
  printf '%s\n' "model: {arch: gpt, num_layers: $L, hidden_size: $C, num_attention_heads: 12," \
    "        ffn_hidden_size: $((4 * C)), seq_length: $T, vocab: $V}" \
    "train: {micro_batch_size: $B, global_batch_size: $B, max_steps: 30, precision: bf16," \
    "        device: cuda, eval_interval: 0, optimizer: {warmup_steps: 5}}" \
    "data: {path: $dir/tokens.bin, format: tokens, val_fraction: 0.1}" \
    "checkpoint: {dir: $dir/checkpoints, interval: 0}" \
    "log: {interval: 1, metrics: $log_dir/gpt2_bench.jsonl}" >"$dir/gpt2_124m.yaml"
  say "GPT-2 124M bf16 benchmark, 30 steps of $B x $T tokens"
  if ! timeout "$(limit 240)" "$tessera" train "$dir/gpt2_124m.yaml" >"$log_dir/gpt2_bench.log" 2>&1; then
    tail -5 "$log_dir/gpt2_bench.log"
    record "gpt2 bench" FAIL "run failed ($log_dir/gpt2_bench.log)"; return
  fi
  local tps roof roof_name mfu
  tps=$(grep -oE '"tokens_per_s": *[0-9.eE+]+' "$log_dir/gpt2_bench.jsonl" | awk '{ print $2 }' |
        tail -n 20 | sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }')
  read -r roof roof_name <<<"$(bf16_roof)"
  mfu=$(awk -v tps="$tps" -v roof="$roof" -v L=$L -v C=$C -v T=$T -v V=$V 'BEGIN {
    n = 12 * L * C * C + 13 * L * C + V * C + 2 * C; f = 6 * n + 12 * L * C * T;
    if (roof > 0) printf "%.1f", 100 * tps * f / (roof * 1e12); else printf "n/a" }')
  record "gpt2 bench" PASS "median $(printf '%.0f' "$tps") tok/s, MFU ${mfu}% of ${roof} TFLOP/s (${roof_name}); target 45%"
}
