#!/usr/bin/env python3
"""`parallel.partition: auto` under `tessera train`: with a machine model (--cluster) the stages are
the cost model's balanced split, without one the FLOP balance, and the banner says which. The
cost-model split must be what every pipeline rank runs (the pp 1 checkpoint shard holds exactly
the layers the banner gives stage 1) and must train to the same losses as one rank.
Standard library only."""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile


def train(args, np, extra, tmp, name):
    metrics = os.path.join(tmp, f"{name}.jsonl")
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(np), args.tessera, "train", args.config,
           "--set", f"log.metrics={metrics}", "--set", "log.interval=1", "--set", f"train.max_steps={args.steps}",
           "--set", "train.threads=1"] + extra
    # An empty cache directory: no calibration cache may stand in for the missing --cluster.
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    with open(metrics) as f:
        return r.stdout, [json.loads(line) for line in f]


def stage_line(out):
    m = re.search(r"^  stages +\[([0-9, ]+)\] \(auto, balanced by ([^)]+)\): (.*)$", out, re.M)
    if not m:
        sys.exit(f"FAILED: no auto stage line in the banner:\n{out}")
    return [int(x) for x in m.group(1).split(", ")], m.group(2), m.group(3)


def shard_params(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return sorted({k.split(".", 1)[1].rsplit(".", 1)[0] for k in json.loads(f.read(n)) if k.startswith("param.")})


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    p.add_argument("--cluster", required=True, help="a cluster whose cost-model split differs from the FLOP one")
    p.add_argument("--np", type=int, required=True)
    p.add_argument("--set", dest="layout", action="append", default=[], help="layout override")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--timeout", type=float, default=120)
    args = p.parse_args()
    layout = [x for o in args.layout for x in ("--set", o)]
    with tempfile.TemporaryDirectory() as tmp:
        _, base = train(args, 1, [], tmp, "base")
        flop_out, _ = train(args, args.np, layout, tmp, "flops")
        ckpt = os.path.join(tmp, "ckpt")
        cost_out, par = train(args, args.np, layout + ["--cluster", args.cluster, "--set", f"checkpoint.dir={ckpt}",
                                                       "--set", f"checkpoint.interval={args.steps}"], tmp, "cost")
        flops, flop_source, _ = stage_line(flop_out)
        split, source, stages = stage_line(cost_out)
        if flop_source != "FLOPs":
            sys.exit(f"FAILED: without a machine model the banner says 'balanced by {flop_source}'")
        if source != "the cost model":
            sys.exit(f"FAILED: with --cluster the banner says 'balanced by {source}'")
        if split == flops:
            sys.exit(f"FAILED: the cluster does not change the split ({split}): the test shows nothing")
        # Each stage's layers from the banner ("pp0 embedding..fc.0 | pp1 fc.1..head") against the
        # layers (all with parameters) whose tensors that pipeline rank saved.
        for s, (count, names) in enumerate(zip(split, stages.split(" | "))):
            first, _, last = names.split(" ", 1)[1].partition("..")
            held = shard_params(os.path.join(ckpt, f"step_{args.steps}", f"shard_tp0_pp{s}.safetensors"))
            if len(held) != count or first not in held or (last or first) not in held:
                sys.exit(f"FAILED: pp rank {s} holds {held}, the banner gives it {names}")
        print(f"FLOP split {flops}, cost-model split {split} ({stages})")
    if len(base) != args.steps or len(par) != args.steps:
        sys.exit(f"FAILED: expected {args.steps} logged steps, got {len(base)} and {len(par)}")
    for b, q in zip(base, par):
        if abs(b["loss"] - q["loss"]) > args.rtol * abs(b["loss"]):
            sys.exit(f"FAILED at step {b['step']}: loss {q['loss']} vs {b['loss']} on one rank")
    print(f"OK: {args.steps} steps, losses within rtol {args.rtol} of one rank")


if __name__ == "__main__":
    main()
