#!/usr/bin/env python3
"""fp16 dynamic loss scaling, end to end through `tessera train` on gpt_tiny.

1. A start scale of 2^24 overflows fp16 (largest value 65504): each of a microbatch's 256 rows
   carries 2^24/256 = 65536 into the logits' gradient. Step 1 must be skipped (skipped_steps 1)
   with the scale halved to 2^23, and its update dropped: step 1's loss equals a clean run's
   (start 2^8, no overflow), step 2's must differ from the clean run's (which did update).
2. The scale follows the rule exactly at every step of both runs: halved on each overflow
   (skipped_steps grows), doubled after every W = loss_scale_window overflow-free steps in a
   row; the forced run must show both an overflow after step 1's and a growth.
3. A model that overflows at every scale (start 1e30, halved 20 times is still ~1e24) stops with
   one clear error line and exit 1 instead of skipping forever.
--set KEY=VALUE applies to every run. The GPU test runs 1 and 2 on train.device=cuda with smaller
batches, --steps 9 and --no-endless: 3 is the trainer's host-side count of skipped steps, the same
code on every device, which the CPU test holds.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def train(args, out, *overrides):
    cmd = [args.tessera, "train", args.config, "--set", "train.precision=fp16", "--set", f"log.metrics={out}",
           "--set", "log.interval=1", "--set", "checkpoint.dir=", "--set", "checkpoint.interval=0",
           "--set", "train.eval_interval=0", "--set", "train.threads=1"]
    for o in args.common + list(overrides):
        cmd += ["--set", o]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-2000:]}")
    return [json.loads(line) for line in open(out)], r.stdout + r.stderr


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tessera", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--set", dest="common", action="append", default=[], help="override for every run")
    p.add_argument("--steps", type=int, default=20, help="steps of the forced and the clean run")
    p.add_argument("--no-endless", action="store_true", help="skip check 3")
    args = p.parse_args()
    window = 3
    with tempfile.TemporaryDirectory() as tmp:
        forced, _ = train(args, os.path.join(tmp, "forced.jsonl"), f"train.max_steps={args.steps}",
                          f"train.initial_loss_scale={2**24}", f"train.loss_scale_window={window}")
        clean, _ = train(args, os.path.join(tmp, "clean.jsonl"), f"train.max_steps={args.steps}",
                         f"train.initial_loss_scale={2**8}", f"train.loss_scale_window={window}")
    first = forced[0]
    if first.get("skipped_steps") != 1 or first.get("loss_scale") != 2.0**23:
        sys.exit(f"FAILED: step 1 with scale 2^24 must overflow, be skipped and halve the scale to 2^23, got {first}")
    if clean[0].get("skipped_steps", 0) != 0:
        sys.exit(f"FAILED: the clean run (scale 2^8) overflowed at step 1: {clean[0]}")
    if abs(forced[0]["loss"] - clean[0]["loss"]) > 1e-6 * abs(clean[0]["loss"]):
        sys.exit(f"FAILED: step 1 losses differ: {forced[0]['loss']} vs {clean[0]['loss']}")
    if forced[1]["loss"] == clean[1]["loss"]:
        sys.exit("FAILED: the overflowing step 1 was not skipped (step 2 losses are equal)")
    events = {}
    for name, run, start in (("forced", forced, 2.0**24), ("clean", clean, 2.0**8)):
        scale, good, skipped = start, 0, 0
        events[name] = {"overflow": 0, "growth": 0}
        for rec in run:
            overflow = rec.get("skipped_steps", 0) > skipped
            skipped = rec.get("skipped_steps", 0)
            if overflow:
                scale, good = max(scale / 2, 1.0), 0
                events[name]["overflow"] += 1
            else:
                good += 1
                if good == window:
                    scale, good = scale * 2, 0
                    events[name]["growth"] += 1
            if rec.get("loss_scale") != scale:
                sys.exit(f"FAILED at step {rec['step']} of the {name} run: scale {rec.get('loss_scale')}, "
                         f"the rule gives {scale}")
    if events["forced"]["overflow"] < 2 or events["forced"]["growth"] < 1 or events["clean"]["growth"] < 1:
        sys.exit(f"FAILED: the runs did not exercise both rules: {events}")
    if args.no_endless:
        print(f"OK: step 1 overflowed and was skipped (scale 2^24 -> 2^23); the scale followed the rule at every "
              f"step (forced run: {events['forced']}, clean run: {events['clean']})")
        return
    cmd = [args.tessera, "train", args.config, "--set", "train.precision=fp16", "--set", "train.initial_loss_scale=1e30",
           "--set", "checkpoint.dir=", "--set", "checkpoint.interval=0", "--set", "train.max_steps=40",
           "--set", "train.threads=1"]
    for o in args.common:
        cmd += ["--set", o]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    errors = [line for line in r.stderr.splitlines() if line.startswith("tessera: error")]
    want = "fp16 gradients overflowed in 20 consecutive steps"
    if r.returncode != 1 or len(errors) != 1 or want not in errors[0]:
        sys.exit(f"FAILED: endless overflow must end with exit 1 and one error line containing '{want}', got "
                 f"exit {r.returncode}, errors {errors}")
    print(f"OK: step 1 overflowed and was skipped (scale 2^24 -> 2^23); the scale followed the rule at every "
          f"step (forced run: {events['forced']}, clean run: {events['clean']}); endless overflow stops")


if __name__ == "__main__":
    main()
