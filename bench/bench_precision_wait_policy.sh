#!/usr/bin/env bash
# bench_precision_vs_pytorch.py one round at a time, alternating libgomp's default wait policy
# (threads spin at barriers before sleeping) with OMP_WAIT_POLICY=passive (they sleep at once),
# so both see the same load. PyTorch runs inside the script and Tessera as its child, so every
# variant runs under the same policy. On a shared, oversubscribed machine the spinning thread
# takes the core the other thread needs to reach the barrier.
# Usage: bench/bench_precision_wait_policy.sh ROUNDS SHAPE... (e.g. 4 4,512,8,256,8 2,1024,16,256,4)
# Writes bench/results/precision3_<layers>x<hidden>_<policy>_r<round>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1
shift
variants="pytorch fp32,pytorch bf16 autocast,pytorch compile bf16 autocast,tessera bf16"
for shape in "$@"; do
  name=$(echo "$shape" | cut -d, -f1-2 | tr , x)
  for r in $(seq "$rounds"); do
    for policy in default passive; do
      echo "=== $name round $r policy $policy $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
      if [ "$policy" = passive ]; then export OMP_WAIT_POLICY=passive; else unset OMP_WAIT_POLICY; fi
      python3 bench/bench_precision_vs_pytorch.py --shape "$shape" --threads 2 --warmup 1 --steps 3 --rounds 1 \
        --variants "$variants" --json "bench/results/precision3_${name}_${policy}_r$r.json"
    done
  done
done
