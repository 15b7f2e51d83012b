#!/usr/bin/env python3
"""ZeRO-3 never holds the model whole on a rank: not while the trainer builds it, not while a
checkpoint is resumed.

A GPT whose parameters dominate its memory (16 layers x 128) trains 2 steps under dp 4 at
ZeRO-3 and saves, then resumes from that checkpoint for 2 more steps. Every rank reports its
set-up peak (data, layers built and sharded one at a time) and its steps' peak (which includes
the resume, read one unit at a time). Required:
- the set-up peak is not above the steps' peak (building the layers whole first, as before,
  held twice the model's fp32 values: above it);
- the resumed run's peak is within 10% of the model's fp32 size W of the fresh run's (loading
  the model whole, as before, added the values and both moments: 3 W).
W is counted from the checkpoint's manifest (every parameter's global shape, 4 bytes each).

Usage: check_zero3_memory.py --tessera EXE --mpirun MPIRUN --config GPT_TINY.yaml"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

MODEL = ["model.num_layers=16", "model.hidden_size=128", "model.num_attention_heads=4", "model.ffn_hidden_size=512",
         "train.micro_batch_size=1", "train.global_batch_size=4", "parallel.zero_stage=3", "train.threads=1",
         "train.eval_interval=0", "log.interval=100", "checkpoint.interval=2", "checkpoint.resume=auto"]
STEPS = re.compile(r"peak tensor memory / microbatches in flight per rank: (.*)")
SETUP = re.compile(r"set-up peak tensor memory per rank: (.*)")


def largest_mib(pattern, out):
    m = pattern.search(out)
    if not m:
        sys.exit(f"FAIL: no '{pattern.pattern}' line in the output:\n{out}")
    return max(float(part.split(" MiB")[0]) for part in m.group(1).split(", "))


def train(args, ckpt, steps):
    sets = MODEL + [f"checkpoint.dir={ckpt}", f"train.max_steps={steps}"]
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "4", args.tessera, "train", args.config]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return largest_mib(SETUP, r.stdout), largest_mib(STEPS, r.stdout), r.stdout


def model_mib(step_dir):
    with open(os.path.join(step_dir, "manifest.json")) as f:
        manifest = json.load(f)
    return sum(4 * math.prod(t["global_shape"]) for t in manifest["tensors"]) / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tessera", required=True)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--config", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup, fresh, _ = train(args, tmp, 2)
        w = model_mib(os.path.join(tmp, "step_2"))
        _, resumed, out = train(args, tmp, 4)
        if "resumed from" not in out:
            sys.exit(f"FAIL: the second run did not resume:\n{out}")
    print(f"model fp32 W {w:.1f} MiB; set-up peak {setup:.1f} MiB, steps' peak {fresh:.1f} MiB, "
          f"after a resume {resumed:.1f} MiB")
    if setup > fresh:
        sys.exit(f"FAIL: the set-up peak {setup:.1f} MiB is above the steps' {fresh:.1f} MiB")
    if resumed > fresh + 0.1 * w:
        sys.exit(f"FAIL: the resumed run's peak {resumed:.1f} MiB is more than 0.1 W above the fresh run's "
                 f"{fresh:.1f} MiB")
    print("OK")


if __name__ == "__main__":
    main()
