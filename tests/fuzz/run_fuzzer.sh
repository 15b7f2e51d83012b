#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/CMakeLists.txt, a standalone clang project) into
# build-fuzz/ and runs each for SECONDS (default 60) on a copy of its seed corpus under
# -rss_limit_mb=2048 -malloc_limit_mb=512, so a reader that trusts a size field fails.
# Exits non-zero on any finding (crash, exception other than tessera::Error, sanitizer report,
# leak, timeout, out-of-memory); the reproducer is kept in build-fuzz/findings/<target>/.
#
#   tests/fuzz/run_fuzzer.sh [SECONDS] [TARGET...]    targets: config_loader safetensors token_file
#
# Reproduce a finding: build-fuzz/fuzz_<target> build-fuzz/findings/<target>/crash-...
# Needs clang++-14 and its libFuzzer runtime (Debian: clang-14 libclang-rt-14-dev), or set CXX.
set -euo pipefail

seconds=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(config_loader safetensors token_file)
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fuzz_dir=$root/tests/fuzz
build=${TESSERA_FUZZ_BUILD_DIR:-$root/build-fuzz}
cxx=${CXX_FUZZ:-clang++-14}
jobs=${TESSERA_FUZZ_BUILD_JOBS:-$(nproc)}

command -v "$cxx" >/dev/null || { echo "run_fuzzer.sh: $cxx not found (apt: clang-14 libclang-rt-14-dev)" >&2; exit 2; }
generator=()
command -v ninja >/dev/null && [[ ! -f $build/CMakeCache.txt ]] && generator=(-G Ninja)

echo "== building fuzz targets with $cxx into $build"
start=$SECONDS
cmake -S "$fuzz_dir" -B "$build" "${generator[@]}" -DCMAKE_CXX_COMPILER="$cxx" >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log" >&2; exit 2; }
mv "$build.configure.log" "$build/configure.log"
cmake --build "$build" -j "$jobs" --target $(printf 'fuzz_%s ' "${targets[@]}") >"$build/build.log" 2>&1 ||
  { tail -50 "$build/build.log" >&2; exit 2; }
echo "   built in $((SECONDS - start)) s"

status=0
for target in "${targets[@]}"; do
  binary=$build/fuzz_$target
  [[ -x $binary ]] || { echo "run_fuzzer.sh: unknown target $target" >&2; exit 2; }
  work=$build/corpus/$target
  findings=$build/findings/$target
  log=$build/fuzz_$target.log
  rm -rf "$work" "$findings"
  mkdir -p "$work" "$findings"
  cp "$fuzz_dir/corpus/$target/"* "$work/"
  dict=()
  [[ -f $fuzz_dir/$target.dict ]] && dict=(-dict="$fuzz_dir/$target.dict")
  echo "== fuzz_$target for ${seconds} s"
  rc=0
  # -max_len 4096: room to grow past the seeds (token files have a 1 KiB header) while
  # keeping executions fast. -timeout 10: a single input taking longer is a finding.
  "$binary" "${dict[@]}" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$work" >"$log" 2>&1 &
  pid=$!
  wait "$pid" || rc=$?
  # The target's scratch file (fuzz_util.h) outlives a crash; remove it by the fuzzer's pid.
  rm -f /dev/shm/tessera_fuzz_"$pid".* /tmp/tessera_fuzz_"$pid".*
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  if [[ $rc -ne 0 ]] || compgen -G "$findings/*" >/dev/null; then
    # On stdout with the rest, so CTest's log keeps the order.
    echo "FAIL fuzz_$target: exit $rc after ${execs:-?} executions; log $log"
    grep -E -A12 '^==[0-9]+==ERROR|runtime error:|^round trip|terminate called|ALARM|^MS: ' "$log" | cut -c1-300 | head -60 || true
    for finding in "$findings"/*; do
      [[ -e $finding ]] && echo "   reproducer: $finding (base64: $(head -c 300 "$finding" | base64 -w0))"
    done
    status=1
  else
    echo "   ok: ${execs:-?} executions (${cov:-no coverage line})"
  fi
done
exit $status
