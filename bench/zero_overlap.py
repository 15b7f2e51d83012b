#!/usr/bin/env python3
"""The share of ZeRO-3 gather time hidden behind compute, measured from the Chrome trace.

Runs a GPT (8 x 256, 16-token sequences, one sample per rank and microbatch) under ZeRO-3 with
log.trace at each zero_prefetch, and reads the trace's "zero_gather" events (a unit's gather,
from its issue to the moment its layer found it complete) and "zero_gather_wait" events (the
part the layer waited for). Hidden share = 1 - sum(wait) / sum(gather), over the traced steps
of every rank. A gather is seen complete only when its layer asks for it, so "zero_gather" is
an upper bound of the collective's time and the share an upper bound of what was hidden.

  python3 bench/zero_overlap.py --tessera build/launcher/tessera [--dp 4] [--prefetch 0,1,2]
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

SETS = ["model.num_layers=8", "model.hidden_size=256", "model.num_attention_heads=4", "model.ffn_hidden_size=1024",
        "model.seq_length=16", "train.micro_batch_size=1", "train.max_steps=12", "train.eval_interval=0",
        "log.interval=1", "train.threads=1", "parallel.zero_stage=3"]


def measure(args, prefetch, tmp):
    trace = os.path.join(tmp, f"trace_{prefetch}.json")
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(args.dp), args.tessera, "train",
           args.config, "--set", *SETS, f"train.global_batch_size={args.dp * args.microbatches}",
           f"parallel.zero_prefetch={prefetch}", f"train.precision={args.precision}", f"log.trace={trace}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stderr}")
    total = collections.Counter()
    for e in json.load(open(trace))["traceEvents"]:
        if e.get("ph") == "X" and e["name"] in ("zero_gather", "zero_gather_wait"):
            total[e["name"]] += e["dur"]
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tessera", default="build/launcher/tessera")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--config", default="configs/tests/gpt_tiny.yaml")
    ap.add_argument("--dp", type=int, default=4)
    ap.add_argument("--microbatches", type=int, default=2)
    ap.add_argument("--prefetch", default="0,1,2")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = ap.parse_args()
    print(f"dp {args.dp}, {args.microbatches} microbatches, {args.precision}; sums over the traced steps of every rank")
    print("| zero_prefetch | gathers ms | waited ms | hidden share |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for prefetch in [int(x) for x in args.prefetch.split(",")]:
            t = measure(args, prefetch, tmp)
            gather, wait = t["zero_gather"] / 1e3, t["zero_gather_wait"] / 1e3
            if gather == 0:
                sys.exit("FAILED: the trace has no zero_gather events")
            print(f"| {prefetch} | {gather:.1f} | {wait:.1f} | {1 - wait / gather:.2f} |", flush=True)


if __name__ == "__main__":
    main()
