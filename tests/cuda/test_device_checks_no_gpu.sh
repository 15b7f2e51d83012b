#!/usr/bin/env bash
# CTest cuda.device_checks_no_gpu: run_device_checks.sh on a machine where nvidia-smi lists no
# device (forced with TESSERA_NVIDIA_SMI=false, so the test means the same on a GPU machine) must
# exit non-zero at once, say "no GPU", and end with its summary table marking the gpu step FAIL.
# Usage: test_device_checks_no_gpu.sh SCRATCH_DIR
set -u
here="$(cd "$(dirname "$0")" && pwd)"
out=$(env -u OUT TESSERA_NVIDIA_SMI=false bash "$here/run_device_checks.sh" "$1" 2>&1)
rc=$?
echo "$out"
fail() { echo "FAILED: $*"; exit 1; }
[ "$rc" -ne 0 ] || fail "run_device_checks.sh exited 0 without a GPU"
grep -q "^no GPU: " <<<"$out" || fail "no 'no GPU:' line"
grep -qE "^gpu +\| FAIL +\| no GPU visible" <<<"$out" || fail "the summary has no failed gpu row"
grep -qE "^kernels +\| skipped: no GPU" <<<"$out" || fail "the kernel step is not marked skipped"
[ "$(grep -c "device check summary" <<<"$out")" -eq 1 ] || fail "not exactly one summary table"
grep -q "^RESULT: FAILED" <<<"$out" || fail "no RESULT: FAILED line"
echo "PASSED: exit $rc, 'no GPU' reported, one summary table"
