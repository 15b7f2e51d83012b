#!/usr/bin/env python3
"""Resume check: a run stopped at step K and resumed from its checkpoint continues the loss
curve of the uninterrupted run: bit-identical under the same layout, within a relative
tolerance under another layout (the checkpoint is resharded on load). Standard library only."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile


def train(args, np, sets, tmp, name, steps, expect_error=None):
    metrics = os.path.join(tmp, name + ".jsonl")
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(np), args.tessera, "train", args.config,
           "--set", f"log.metrics={metrics}", "--set", "log.interval=1", "--set", f"train.max_steps={steps}",
           "--set", f"train.optimizer.decay_steps={args.steps}", "--set", "train.eval_interval=0",
           "--set", "train.threads=1", "--set", f"checkpoint.dir={os.path.join(tmp, 'ckpt')}"]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if expect_error is not None:
        if r.returncode == 0 or not re.search(expect_error, r.stderr):
            sys.exit(f"FAILED: {' '.join(cmd)}\nexpected a failure matching {expect_error!r}, got exit "
                     f"{r.returncode}:\n{r.stderr}")
        return [], r.stderr
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return [json.loads(line) for line in open(metrics)], r.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    p.add_argument("--np", type=int, default=1, help="ranks of the first run")
    p.add_argument("--set", dest="first", action="append", default=[], help="layout of the first run")
    p.add_argument("--resume-np", type=int, default=None)
    p.add_argument("--resume-set", action="append", default=None, help="layout of the resumed run")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--stop", type=int, default=8)
    p.add_argument("--rtol", type=float, default=0.0, help="0: bit-identical")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--compare", type=int, default=None,
                   help="compare only this many resumed steps (a resumed run under another dp size "
                        "with local SGD / DiLoCo matches only up to the next sync)")
    p.add_argument("--expect-error", default=None, help="the resumed run must fail with stderr matching this")
    args = p.parse_args()
    resume_np = args.resume_np or args.np
    resume_set = args.first if args.resume_set is None else args.resume_set
    with tempfile.TemporaryDirectory() as tmp:
        full, _ = train(args, args.np, args.first, tmp, "full", args.steps)
        train(args, args.np, args.first + [f"checkpoint.interval={args.stop}"], tmp, "first", args.stop)
        resumed, out = train(args, resume_np, resume_set + ["checkpoint.resume=auto"], tmp, "resumed", args.steps,
                             args.expect_error)
    if args.expect_error is not None:
        line = next(l for l in out.splitlines() if re.search(args.expect_error, l))
        print(f"OK: resuming at step {args.stop} under {' '.join(resume_set)} fails as expected: {line.strip()}")
        return
    if f"at step {args.stop}" not in out:
        sys.exit(f"FAILED: the second run did not report resuming at step {args.stop}:\n{out}")
    tail = [r for r in resumed if r["step"] > args.stop]
    if [r["step"] for r in tail] != list(range(args.stop + 1, args.steps + 1)):
        sys.exit(f"FAILED: resumed steps {[r['step'] for r in tail]}")
    if args.compare is not None:
        tail = tail[:args.compare]
    worst = 0.0
    for a, b in zip(full[args.stop:], tail):
        rel = abs(a["loss"] - b["loss"]) / abs(a["loss"])
        worst = max(worst, rel)
        if rel > args.rtol:
            sys.exit(f"FAILED at step {a['step']}: resumed loss {b['loss']!r} vs uninterrupted {a['loss']!r} "
                     f"(relative {rel:.2e} > {args.rtol:g})")
    print(f"OK: resumed at step {args.stop} ({' '.join(args.first) or '1 rank'} -> "
          f"{' '.join(resume_set) or '1 rank'}), steps {args.stop + 1}-{args.stop + len(tail)} "
          f"{'bit-identical' if worst == 0 else f'max relative difference {worst:.2e}'}")


if __name__ == "__main__":
    main()
