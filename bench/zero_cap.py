#!/usr/bin/env python3
"""The largest GPT that trains at dp 8 under a fixed per-rank memory cap, per ZeRO stage.

For each stage 0-3 the GPT (hidden 256, 4 heads, ffn 1024, 16-token sequences, one sample per
rank and step) grows in layers until the memory model's per-rank peak for the layout
(`tessera plan --config-layout`) passes the cap. The largest that fits then trains for a few
steps under `mpirun -np 8` with parallel.memory_cap_mib set to the cap (the start-up check
accepts it), reporting its tokens/s (median of the steps after the first) and the measured peak
tensor memory; one more layer must be refused by that start-up check (exit 1, before any rank
allocates).

  python3 bench/zero_cap.py --tessera build/launcher/tessera [--cap-mib 48] [--precision fp32] [--stages 0,1,2,3]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

BASE = ["model.hidden_size=256", "model.num_attention_heads=4", "model.ffn_hidden_size=1024", "model.seq_length=16",
        "train.micro_batch_size=1", "train.eval_interval=0", "log.interval=1", "train.threads=1"]
PEAK = re.compile(r"peak tensor memory / microbatches in flight per rank: (.*)")
REFUSED = re.compile(r"parallel.memory_cap_mib = .* over the cap, before anything is allocated")


def sets(args, stage, layers):
    return BASE + [f"model.num_layers={layers}", f"train.global_batch_size={args.dp}", f"parallel.zero_stage={stage}",
                   f"train.precision={args.precision}"]


def predicted_mib(args, stage, layers):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "plan.json")
        subprocess.run([args.tessera, "plan", args.config, "--world", str(args.dp), "--cluster", args.cluster,
                        "--config-layout", "--json", out, "--set", *sets(args, stage, layers)], check=True,
                       stdout=subprocess.DEVNULL)
        with open(out) as f:
            plan = json.load(f)
    return plan["predicted"]["peak_memory_bytes"] / 2**20, plan["model"]


def largest_fitting(args, stage):
    lo, hi = 0, 1
    while predicted_mib(args, stage, hi)[0] <= args.cap_mib:
        lo, hi = hi, hi * 2
        if hi > 512:
            sys.exit(f"stage {stage}: more than 512 layers fit {args.cap_mib} MiB; raise nothing, lower the cap")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if predicted_mib(args, stage, mid)[0] <= args.cap_mib:
            lo = mid
        else:
            hi = mid
    return lo


def train(args, stage, layers, tmp):
    metrics = os.path.join(tmp, f"s{stage}_l{layers}.jsonl")
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(args.dp), args.tessera, "train",
           args.config, "--set", *sets(args, stage, layers), f"train.max_steps={args.steps}",
           f"parallel.memory_cap_mib={args.cap_mib}", f"log.metrics={metrics}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r, metrics


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tessera", default="build/launcher/tessera")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--config", default="configs/tests/gpt_tiny.yaml")
    ap.add_argument("--cluster", default="configs/clusters/h100_nvlink.yaml")
    ap.add_argument("--cap-mib", type=float, default=48)
    ap.add_argument("--dp", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--stages", default="0,1,2,3", help="ZeRO stages to run, comma-separated")
    args = ap.parse_args()
    print(f"cap {args.cap_mib:g} MiB per rank, dp {args.dp}, {args.precision}")
    print("| stage | layers | model | predicted MiB | measured peak MiB | tokens/s (median, spread) | +1 layer |")
    print("|---:|---:|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for stage in [int(x) for x in args.stages.split(",")]:
            layers = largest_fitting(args, stage)
            if layers == 0:
                print(f"| {stage} | 0 | nothing fits | | | | |", flush=True)
                continue
            predicted, model = predicted_mib(args, stage, layers)
            r, metrics = train(args, stage, layers, tmp)
            if r.returncode != 0:
                sys.exit(f"stage {stage}, {layers} layers: the run under the cap failed:\n{r.stderr}")
            peak = max(float(p.split(" MiB")[0]) for p in PEAK.search(r.stdout).group(1).split(", "))
            rates = [json.loads(line)["tokens_per_s"] for line in open(metrics)][1:]
            refused, _ = train(args, stage, layers + 1, tmp)
            ok = refused.returncode == 1 and REFUSED.search(refused.stderr)
            if not ok:
                sys.exit(f"stage {stage}: {layers + 1} layers were not refused at start-up:\n{refused.stderr}")
            print(f"| {stage} | {layers} | {model} | {predicted:.1f} | {peak:.1f} | {statistics.median(rates):.0f} "
                  f"({min(rates):.0f}-{max(rates):.0f}) | refused |", flush=True)


if __name__ == "__main__":
    main()
