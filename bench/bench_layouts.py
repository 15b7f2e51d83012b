#!/usr/bin/env python3
"""Data- and tensor-parallel scaling on this machine, measured from Tessera's own metrics.

For each layout it runs `tessera train` under mpirun (one thread per rank) and reads the
JSONL metrics of the timed steps (after a warm-up). Reports, against the dp = 1 run with the
same per-rank batch measured in the same invocation:
  - weak-scaling efficiency of data parallelism: step_ms(dp=1) / step_ms(dp=N)
  - overlap: the fraction of the gradient all-reduce span hidden behind backward,
    1 - exposed / span, from per-rank timestamps (grad_comm_* fields)
  - optimizer-state and peak tensor memory per rank with and without ZeRO-1
  - tensor parallelism: step time, time in tp communication (tp_comm_ms) and peak tensor
    memory per rank for tp = 1, 2
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile


def run(args, np, sets, tmp, name):
    metrics = os.path.join(tmp, name + ".jsonl")
    cmd = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "-np", str(np),
           args.tessera, "train", args.config, "--set", f"log.metrics={metrics}", "--set", "log.interval=1",
           "--set", f"train.max_steps={args.warmup + args.steps}", "--set", "train.eval_interval=0",
           "--set", "train.threads=1", "--set", "checkpoint.interval=0"]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in open(metrics)][args.warmup:]
    # The trainer's start-up line (runtime/train/trainer.cc); a missing one is a broken parser.
    state = re.search(r"^optimizer state: ([0-9.]+) MiB", out, re.M)
    if not state:
        sys.exit(f"bench_layouts: no 'optimizer state' line in the output of {' '.join(cmd)}")
    med = lambda k: statistics.median(r[k] for r in rows) if k in rows[0] else float("nan")
    return {"name": name, "np": np, "step_ms": med("step_ms"), "tp_ms": med("tp_comm_ms"),
            "exposed": med("grad_comm_exposed_ms"),
            "span": med("grad_comm_span_ms"), "mem_mib": rows[-1]["mem_bytes"] / 2**20,
            "state_mib": float(state.group(1))}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tessera", default="build/launcher/tessera")
    p.add_argument("--config", default="configs/shakespeare_char.yaml")
    p.add_argument("--micro", type=int, default=12, help="micro batch per rank")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--buckets", default="0.05,0.25,1,25")
    args = p.parse_args()
    m = args.micro
    with tempfile.TemporaryDirectory() as tmp:
        base = run(args, 1, [f"train.micro_batch_size={m}", f"train.global_batch_size={m}"], tmp, "dp1")
        results = [base]
        for b in args.buckets.split(","):
            results.append(run(args, 2, [f"train.micro_batch_size={m}", f"train.global_batch_size={2 * m}",
                                         f"parallel.bucket_mb={b}"], tmp, f"dp2 bucket {b} MB"))
        results.append(run(args, 2, [f"train.micro_batch_size={m}", f"train.global_batch_size={2 * m}",
                                     "parallel.zero_stage=1"], tmp, "dp2 ZeRO-1"))
        tp1 = base
        tp2 = run(args, 2, [f"train.micro_batch_size={m}", f"train.global_batch_size={m}",
                            "parallel.tensor_model_parallel_size=2"], tmp, "tp2")
    print("| layout | ranks | step ms (median) | weak-scaling eff. | grad comm span ms | exposed ms | hidden | optimizer state MiB/rank | peak tensor MiB/rank |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        eff = base["step_ms"] / r["step_ms"]
        hidden = 1 - r["exposed"] / r["span"] if r["span"] == r["span"] and r["span"] > 0 else float("nan")
        print(f"| {r['name']} | {r['np']} | {r['step_ms']:.1f} | {eff:.2f} | {r['span']:.2f} | {r['exposed']:.2f} | "
              f"{hidden:.0%} | {r['state_mib']:.2f} | {r['mem_mib']:.1f} |")
    print()
    print("| tensor parallel (same global batch) | ranks | step ms (median) | speedup vs tp 1 | tp comm ms/step | share of step | peak tensor MiB/rank |")
    print("|---|---|---|---|---|---|---|")
    for r in (tp1, tp2):
        tp_ms = r["tp_ms"] if r["tp_ms"] == r["tp_ms"] else 0.0
        print(f"| {r['name'].replace('dp1', 'tp1')} | {r['np']} | {r['step_ms']:.1f} | {tp1['step_ms'] / r['step_ms']:.2f} | "
              f"{tp_ms:.1f} | {tp_ms / r['step_ms']:.0%} | {r['mem_mib']:.1f} |")


if __name__ == "__main__":
    main()
