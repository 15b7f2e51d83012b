#!/usr/bin/env python3
"""Pipeline bubble and activation memory, measured from Tessera's own trace.

For each schedule (GPipe, 1F1B, interleaved 1F1B with v = 2), p = 2, 4 stages and
m = 4, 8, 16 microbatches, it runs `tessera train` under mpirun with log.trace, and computes
per traced step and rank: bubble = 1 - (forward + backward compute time of the rank) /
(span of the step's pipeline phase over all ranks: first forward start to last backward
end). Printed next to the theory (p-1)/(m+p-1), or (p-1)/(v*m+p-1) for interleaved, and the
target measured <= 1.15 x theory + 2 points. A second table gives the peak tensor memory
per stage for GPipe vs 1F1B vs 1F1B with full recompute, from the run's per-rank summary.
"""
import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import tempfile


def run(args, p, m, schedule, v, recompute, tmp):
    trace = os.path.join(tmp, f"trace_{p}_{m}_{schedule}_{recompute}.json")
    cmd = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "-np", str(p), args.tessera,
           "train", args.config, "--set", f"parallel.pipeline_model_parallel_size={p}",
           "--set", f"parallel.schedule={schedule}", "--set", f"parallel.virtual_stages={v}",
           "--set", f"parallel.recompute={recompute}", "--set", f"train.micro_batch_size={args.micro}",
           "--set", f"train.global_batch_size={args.micro * m}", "--set", "train.max_steps=12",
           "--set", "train.eval_interval=0", "--set", "train.threads=1", "--set", f"log.trace={trace}",
           "--set", "log.interval=100", "--set", "log.metrics=null", "--set", "checkpoint.interval=0"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    events = [e for e in json.load(open(trace))["traceEvents"] if e["ph"] == "X"]
    per_step = collections.defaultdict(list)
    for e in events:
        if e["cat"] == "compute":
            per_step[e["args"]["step"]].append(e)
    bubbles = []
    for step, evs in per_step.items():
        start = min(e["ts"] for e in evs)
        end = max(e["ts"] + e["dur"] for e in evs)
        for rank in range(p):
            busy = sum(e["dur"] for e in evs if e["pid"] == rank)
            bubbles.append(1 - busy / (end - start))
    mem = re.search(r"per rank: (.*)", out).group(1)
    stages = [float(x.split(" MiB")[0]) for x in mem.split(", ")]
    return statistics.median(bubbles), stages


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tessera", default="build/launcher/tessera")
    p.add_argument("--config", default="configs/bench/gpt_pipeline.yaml")
    p.add_argument("--micro", type=int, default=4)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("| schedule | p | m | theory | measured (median over steps and stages) | target 1.15 x theory + 2 pts | met |")
        print("|---|---|---|---|---|---|---|")
        for schedule, v in (("gpipe", 1), ("1f1b", 1), ("interleaved", 2)):
            for stages in (2, 4):
                for m in (4, 8, 16):
                    theory = (stages - 1) / (v * m + stages - 1)
                    measured, _ = run(args, stages, m, schedule, v, "none", tmp)
                    target = 1.15 * theory + 0.02
                    print(f"| {schedule} | {stages} | {m} | {theory:.1%} | {measured:.1%} | {target:.1%} | "
                          f"{'yes' if measured <= target else 'no'} |", flush=True)
        print()
        print("| p = 4, m = 8 | peak tensor MiB, stage 0 | stage 1 | stage 2 | stage 3 |")
        print("|---|---|---|---|---|")
        for schedule, recompute in (("gpipe", "none"), ("1f1b", "none"), ("1f1b", "selective"), ("1f1b", "full")):
            _, mem = run(args, 4, 8, schedule, 1, recompute, tmp)
            print(f"| {schedule}, recompute {recompute} | " + " | ".join(f"{x:.1f}" for x in mem) + " |", flush=True)


if __name__ == "__main__":
    main()
