#!/usr/bin/env python3
"""Trace check: a pipeline run with log.trace writes one Chrome trace whose complete events
("ph": "X", microsecond ts/dur, pid = rank) hold exactly one forward and one backward per
microbatch per traced step on every stage, with sends and receives between them."""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    args = p.parse_args()
    stages, microbatches, steps = 2, 4, 12
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "trace.json")
        cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(stages), args.tessera, "train",
               args.config, "--set", f"parallel.pipeline_model_parallel_size={stages}", "--set",
               f"train.max_steps={steps}", "--set", f"log.trace={trace}", "--set", "train.threads=1",
               "--set", "train.eval_interval=0"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
        events = json.load(open(trace))["traceEvents"]
        leftovers = [f for f in os.listdir(tmp) if f != "trace.json"]
    if leftovers:
        sys.exit(f"FAILED: per-rank files left behind: {leftovers}")
    complete = [e for e in events if e["ph"] == "X"]
    for e in complete:
        if not (isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["dur"] >= 0 and e["pid"] in range(stages)):
            sys.exit(f"FAILED: malformed event {e}")
    count = collections.Counter((e["pid"], e["name"].split()[0], e["args"]["step"]) for e in complete)
    traced_steps = sorted({e["args"]["step"] for e in complete})
    if len(traced_steps) != 10:
        sys.exit(f"FAILED: expected 10 traced steps, got {traced_steps}")
    for rank in range(stages):
        for step in traced_steps:
            for name in ("forward", "backward"):
                if count[(rank, name, step)] != microbatches:
                    sys.exit(f"FAILED: rank {rank} step {step}: {count[(rank, name, step)]} {name} events, "
                             f"expected {microbatches}")
            for name in ("optimizer", "send_act" if rank == 0 else "recv_act"):
                if count[(rank, name, step)] == 0:
                    sys.exit(f"FAILED: rank {rank} step {step}: no {name} event")
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    print(f"OK: {len(complete)} events over steps {traced_steps[0]}-{traced_steps[-1]}, ranks {sorted(names)}")


if __name__ == "__main__":
    main()
