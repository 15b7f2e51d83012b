#!/usr/bin/env bash
# Checks the installed CMake package end to end: installs a Tessera build tree to a temporary
# prefix, checks the install layout and the targets, builds examples/embed_trainer (which
# includes only <tessera/tessera.h>) against the prefix with find_package(Tessera), and runs
# it: on 1 rank with its config built in code, under mpirun -np N with dp = N and ZeRO-1, and
# under mpirun -np N with pp = N from its YAML config; then dp = N with ZeRO-1 stopped by its
# callback half-way (saving a checkpoint) and resumed with pp = N. Each run must exit 0 with
# one loss line per step (printed by its on_step callback); the 1-rank loss must fall and the
# custom layer must train; the other runs must reproduce the 1-rank losses (relative 1e-5:
# the DataSource, the custom layer, the YAML loader and the checkpoints keep the layout out
# of the numbers).
# Run by the CTest test package.embed_trainer.
#
#   scripts/check_package.sh BUILD_DIR [--np 2] [--steps 20] [--mpirun mpirun] [--cxx c++]
#                                      [--config Release] [--cmake cmake] [--keep]
set -euo pipefail

usage() { sed -n '2,13p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
build=$(cd "$1" && pwd); shift
src=$(cd "$(dirname "$0")/.." && pwd)
np=2 steps=20 mpirun=mpirun cxx="" config="" cmake=cmake keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --np) np=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --mpirun) mpirun=$2; shift 2 ;;
    --cxx) cxx=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --cmake) cmake=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) usage ;;
  esac
done
config=${config:-Release}

work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-package.XXXXXX")
if [ "$keep" = 1 ]; then echo "check_package: keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
fail() { echo "check_package: FAIL: $*" >&2; exit 1; }
prefix=$work/prefix
# The consumer must find only this prefix, not a build tree from the user package registry.
cmake_args=(-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE="$config" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
[ -n "$cxx" ] && cmake_args+=(-DCMAKE_CXX_COMPILER="$cxx")

echo "check_package: installing $build to $prefix"
"$cmake" --install "$build" --prefix "$prefix" --config "$config" >"$work/install.log" || { cat "$work/install.log"; fail "cmake --install"; }
for f in lib/cmake/Tessera/TesseraConfig.cmake lib/cmake/Tessera/TesseraConfigVersion.cmake \
         lib/libtessera_runtime.a lib/libtessera_kernels.a lib/libtessera_partitioner.a \
         include/tessera/tessera.h include/tessera/runtime/tensor.h include/tessera/runtime/model/layer.h \
         include/tessera/kernels/matmul.h include/tessera/partitioner/layer_graph.h bin/tessera; do
  [ -e "$prefix/$f" ] || fail "missing $f in the install tree"
done
"$prefix/bin/tessera" --version | grep -q '^tessera [0-9]' || fail "installed tessera --version"

# The optional component, and an unknown one refused: a configure-only probe project.
mkdir -p "$work/probe"
cat >"$work/probe/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.24)
project(probe LANGUAGES CXX)
find_package(Tessera 0.1 REQUIRED COMPONENTS launcher)
foreach(t Tessera::tessera Tessera::runtime Tessera::kernels Tessera::partitioner Tessera::launcher)
  if(NOT TARGET ${t})
    message(FATAL_ERROR "find_package(Tessera) did not define ${t}")
  endif()
endforeach()
find_package(Tessera QUIET COMPONENTS no_such_component)
if(Tessera_FOUND)
  message(FATAL_ERROR "find_package(Tessera COMPONENTS no_such_component) should fail")
endif()
CMAKE
"$cmake" -S "$work/probe" -B "$work/probe/build" "${cmake_args[@]}" >"$work/probe.log" 2>&1 || { cat "$work/probe.log"; fail "find_package probe"; }

echo "check_package: building examples/embed_trainer against the installed package"
"$cmake" -S "$src/examples/embed_trainer" -B "$work/embed" "${cmake_args[@]}" >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; fail "configuring examples/embed_trainer"; }
"$cmake" --build "$work/embed" -j2 >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "building examples/embed_trainer"; }

# run NAME NP ARGS...: one embed_trainer job, its output in $work/NAME.log.
run() {
  local name=$1 ranks=$2; shift 2
  echo "check_package: $mpirun -np $ranks embed_trainer $*"
  set +e
  OMPI_MCA_rmaps_base_oversubscribe=1 "$mpirun" --oversubscribe --allow-run-as-root --bind-to none -np "$ranks" \
    -x OMP_NUM_THREADS=1 "$work/embed/embed_trainer" "$@" >"$work/$name.log" 2>&1
  local rc=$?
  set -e
  cat "$work/$name.log"
  [ "$rc" = 0 ] || fail "embed_trainer $* (np $ranks) exited with $rc"
  grep -q "^embed_trainer: done, scale " "$work/$name.log" || fail "$name: no 'done' line"
}
# Tessera::tessera links the device runtime: train.device = cuda reaches the CUDA runtime (here,
# with no GPU, its refusal naming the missing device), not "this program does not link it".
if grep -q 'set(Tessera_WITH_CUDA ON)' "$prefix/lib/cmake/Tessera/TesseraConfig.cmake" &&
   ! command -v nvidia-smi >/dev/null; then
  set +e
  "$work/embed/embed_trainer" --steps 1 --set train.device=cuda >"$work/device.log" 2>&1
  rc=$?
  set -e
  cat "$work/device.log"
  [ "$rc" != 0 ] && grep -q "no CUDA device is visible" "$work/device.log" ||
    fail "embed_trainer --set train.device=cuda: expected the CUDA runtime's 'no CUDA device is visible'"
fi
run single 1 --steps "$steps"
run dp "$np" --steps "$steps" --set parallel.zero_stage=1
run pp "$np" --steps "$steps" --config "$src/examples/embed_trainer/embed_trainer.yaml" --pp "$np"
half=$((steps / 2))
run stopped "$np" --steps "$steps" --set parallel.zero_stage=1 --stop-after "$half" --checkpoint "$work/ckpt"
run resumed "$np" --steps "$steps" --pp "$np" --checkpoint "$work/ckpt"

# One "step i/N | loss X" line per step; the mean of the last 5 losses must be under 80% of
# the mean of the first 5 (the stream's floor is about 0.6 nats, the start ln(24) = 3.18).
awk -v steps="$steps" '
  /^step [0-9]+\/[0-9]+ \| loss / { n++; loss[n] = $5 }
  /^embed_trainer: done, scale / { scale = $4 }
  END {
    if (n != steps) { printf "check_package: FAIL: %d loss lines, expected %d\n", n, steps; exit 1 }
    k = n < 10 ? int(n / 2) : 5
    for (i = 1; i <= k; i++) { first += loss[i]; last += loss[n - k + i] }
    first /= k; last /= k
    printf "check_package: mean loss of the first %d steps %.4f, of the last %d %.4f; scale %s\n", k, first, k, last, scale
    if (!(last < 0.8 * first)) { print "check_package: FAIL: the loss did not fall"; exit 1 }
    if (scale == "" || scale == "1.0000") { print "check_package: FAIL: the custom layer was not trained"; exit 1 }
  }' "$work/single.log" || exit 1

# The "losses:" lines (each run's steps, 6 decimals) against the 1-rank run's from step FIRST.
compare() {
  local name=$1 first=$2 expected=$3
  paste <(grep '^losses:' "$work/single.log" | tr ' ' '\n' | tail -n +$((first + 1)) | head -n "$expected") \
        <(grep '^losses:' "$work/$name.log" | tr ' ' '\n' | tail -n +2) |
    awk -v name="$name" -v first="$first" -v expected="$expected" '
      { n++; d = $1 - $2; if (d < 0) d = -d; if (d > worst) worst = d
        if ($2 == "" || d > 1e-5 * $1 + 2e-6) {
          printf "check_package: FAIL: %s step %d loss %s, 1 rank %s\n", name, first + n - 1, $2, $1; bad = 1 } }
      END { if (n != expected) { printf "check_package: FAIL: %s: %d losses, expected %d\n", name, n, expected; exit 1 }
            if (!bad) printf "check_package: %s: %d losses equal the 1-rank run (largest difference %.2g)\n", name, n, worst
            exit bad }'
}
compare dp 1 "$steps"
compare pp 1 "$steps"
compare stopped 1 "$half"
compare resumed $((half + 1)) $((steps - half))
grep -q "^checkpoint step $half " "$work/stopped.log" || fail "stopped: no checkpoint at step $half"
echo "check_package: OK"
