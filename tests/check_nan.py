#!/usr/bin/env python3
"""NaN handling check: a run made to diverge (learning rate 1e3, no clipping) reaches a
non-finite loss. With train.on_nan = abort every rank stops at the same step, and the job
prints exactly one error line, `tessera: error: step N: the loss (...) or the gradient norm
(...) is not finite; stopping (...)` (the values are reduced over all ranks, so the ranks agree
and the job ends without MPI_Abort), and exits 1; N is the first step the skip run drops.
With skip the job finishes, the skipped updates counted in the log line and the metrics."""
import argparse
import json
import re
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
        abort_rows = [json.loads(line) for line in open(os.path.join(tmp, "a.jsonl"))]
        skip = run(args, "skip", os.path.join(tmp, "s.jsonl"))
        rows = [json.loads(line) for line in open(os.path.join(tmp, "s.jsonl"))]
    if skip.returncode != 0 or "| skipped " not in skip.stdout:
        sys.exit(f"FAILED: on_nan=skip gave exit {skip.returncode}:\n{skip.stdout}\n{skip.stderr}")
    skipped = rows[-1].get("skipped_steps", 0)
    if len(rows) != 20 or skipped == 0:
        sys.exit(f"FAILED: {len(rows)} logged steps, {skipped} skipped")
    first = next(r["step"] for r in rows if r.get("skipped_steps", 0) > 0)
    text = abort.stdout + abort.stderr
    line = re.compile(rf"tessera: error: step {first}: the loss \(\S+\) or the gradient norm \(\S+\) is not "
                      r"finite; stopping \(train.on_nan = abort; `skip` drops such steps' updates instead\)")
    errors = [l for l in text.splitlines() if "error" in l.lower()]
    if abort.returncode != 1 or len(errors) != 1 or not line.fullmatch(errors[0]):
        sys.exit(f"FAILED: on_nan=abort gave exit {abort.returncode} and these error lines (want exactly one, "
                 f"'{line.pattern}'):\n" + "\n".join(errors) + f"\n--- output:\n{text}")
    if [r["step"] for r in abort_rows] != list(range(1, first)):
        sys.exit(f"FAILED: the aborted run logged steps {[r['step'] for r in abort_rows]}, expected 1-{first - 1}")
    print(f"OK: abort stopped the job at step {first} with one line (exit 1): {errors[0]}\n"
          f"    skip finished 20 steps with {skipped} skipped, the first at step {first}")


if __name__ == "__main__":
    main()
