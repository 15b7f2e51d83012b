#!/usr/bin/env python3
"""NaN handling check: a run made to diverge (learning rate 1e3, no clipping) reaches a
non-finite loss; with train.on_nan = abort every rank stops with one clear line and a
non-zero exit; with skip the job finishes, the skipped updates counted in the log line and
the metrics."""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def run(args, on_nan, metrics):
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "2", args.tessera, "train", args.config,
           "--set", "parallel.tensor_model_parallel_size=2", "--set", "train.optimizer.lr=1e3",
           "--set", "train.optimizer.min_lr=1e3", "--set", "train.optimizer.grad_clip=0",
           "--set", "train.max_steps=20", "--set", "train.eval_interval=0", "--set", "train.threads=1",
           "--set", f"train.on_nan={on_nan}", "--set", f"log.metrics={metrics}", "--set", "log.interval=1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        abort = run(args, "abort", os.path.join(tmp, "a.jsonl"))
        text = abort.stdout + abort.stderr
        if abort.returncode == 0 or "is not finite; stopping (train.on_nan = abort" not in text:
            sys.exit(f"FAILED: on_nan=abort gave exit {abort.returncode}:\n{text}")
        skip = run(args, "skip", os.path.join(tmp, "s.jsonl"))
        rows = [json.loads(line) for line in open(os.path.join(tmp, "s.jsonl"))]
    if skip.returncode != 0 or "| skipped " not in skip.stdout:
        sys.exit(f"FAILED: on_nan=skip gave exit {skip.returncode}:\n{skip.stdout}\n{skip.stderr}")
    skipped = rows[-1].get("skipped_steps", 0)
    if len(rows) != 20 or skipped == 0:
        sys.exit(f"FAILED: {len(rows)} logged steps, {skipped} skipped")
    print(f"OK: abort stopped the job (exit {abort.returncode}); skip finished 20 steps with {skipped} skipped")


if __name__ == "__main__":
    main()
