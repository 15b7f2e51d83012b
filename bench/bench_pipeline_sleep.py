#!/usr/bin/env python3
"""Pipeline bubble of the real executor with sleep-based compute (bench_pipeline_sleep), so
that p = 4 and 8 stages on a 2-core machine measure the schedules, the StageExecutor and the
MPI transfers between stages rather than core sharing.

For each schedule (GPipe, 1F1B, interleaved 1F1B with v = 2), p = 4 and 8 and m = 4, 8, 16, 32
microbatches (interleaved needs m to be a multiple of p), it runs 12 steps under mpirun with
the trace on and computes, per traced step (2-11) and rank, bubble = 1 - (the rank's compute
time) / (the step's pipeline span over all ranks: first forward start to last backward end),
the same definition as bench/bench_pipeline.py. The table gives the median over steps and
ranks, the theory (p-1)/(m+p-1), or (p-1)/(v*m+p-1) interleaved, and the target
measured <= 1.15 x theory + 2 points.

    python3 bench/bench_pipeline_sleep.py [--bench build/bench/bench_pipeline_sleep] [--forward-ms 10]
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import tempfile


def bubble(args, schedule, p, m, v, tmp):
    trace = os.path.join(tmp, f"{schedule}_{p}_{m}.json")
    cmd = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "-np", str(p), args.bench,
           "--schedule", schedule, "--microbatches", str(m), "--virtual", str(v),
           "--forward-ms", str(args.forward_ms), "--steps", "12", "--trace", trace]
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    per_step = collections.defaultdict(list)
    for e in json.load(open(trace))["traceEvents"]:
        if e["ph"] == "X" and e["cat"] == "compute":
            per_step[e["args"]["step"]].append(e)
    values = []
    for evs in per_step.values():
        span = max(e["ts"] + e["dur"] for e in evs) - min(e["ts"] for e in evs)
        for rank in range(p):
            values.append(1 - sum(e["dur"] for e in evs if e["pid"] == rank) / span)
    return statistics.median(values), min(values), max(values)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", default="build/bench/bench_pipeline_sleep")
    p.add_argument("--forward-ms", type=float, default=10)
    p.add_argument("--stages", default="4,8")
    p.add_argument("--microbatches", default="4,8,16,32")
    args = p.parse_args()
    print("| schedule | p | m | theory | measured (median; min-max over steps and ranks) | target | met |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for schedule, v in (("gpipe", 1), ("1f1b", 1), ("interleaved", 2)):
            for stages in map(int, args.stages.split(",")):
                for m in map(int, args.microbatches.split(",")):
                    if v > 1 and m % stages:
                        continue
                    theory = (stages - 1) / (v * m + stages - 1)
                    target = 1.15 * theory + 0.02
                    med, lo, hi = bubble(args, schedule, stages, m, v, tmp)
                    name = schedule if v == 1 else f"{schedule}, v {v}"
                    print(f"| {name} | {stages} | {m} | {100 * theory:.1f}% | {100 * med:.1f}% "
                          f"({100 * lo:.1f}-{100 * hi:.1f}) | {100 * target:.1f}% | "
                          f"{'yes' if med <= target else '**no**'} |", flush=True)


if __name__ == "__main__":
    main()
