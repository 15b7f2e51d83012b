#!/usr/bin/env python3
"""Checks what `tessera train` prints when its output is a pipe or a file (a batch log): the
start-up banner, step lines with the time left, no '\\r' anywhere (also under mpirun, whose
ranks see a pseudo-terminal), and the one warning when the measured step time is far from the
prediction. Leaves the two runs' metrics in OUT_DIR (one rank; tp 2 on two ranks) for the
plot test.

    python3 tests/docs/check_train_output.py --tessera build/launcher/tessera --out OUT_DIR
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = 12
MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", "2"]


def train(prefix, tessera, metrics, extra):
    # No calibration of this machine unless the test gives a cluster: the same output everywhere.
    env = dict(os.environ, XDG_CACHE_HOME=str(metrics.parent / "cache"))
    command = [*prefix, str(tessera), "train", "configs/tests/gpt_tiny.yaml", "--set", f"train.max_steps={STEPS}",
               "--set", "log.interval=5", "--set", f"log.metrics={metrics}", *extra]
    r = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                       timeout=120)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(command)} exited with {r.returncode}:\n{out}")
    return r.stdout, out


def check(ok, what, out):
    if not ok:
        sys.exit(f"FAILED: {what}; the output was:\n{out}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tessera", required=True, type=pathlib.Path)
    p.add_argument("--out", required=True, type=pathlib.Path)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tessera = args.tessera.resolve()

    raw, out = train([], tessera, args.out / "one_rank.jsonl",
                     ["--cluster", str(ROOT / "tests/docs/fast_cluster.yaml")])
    check(b"\r" not in raw, "a '\\r' in the output of a run whose stdout is a pipe", out)
    check(re.search(r"^tessera \S+ \| world 1 = dp 1 x tp 1 x pp 1 \| \d+ threads? per rank$", out, re.M),
          "no banner head line", out)
    for topic in ("layout", "stages", "model", "data", "checkpoint", "predicted"):
        check(re.search(rf"^  {topic} +\S", out, re.M), f"no '{topic}' line in the banner", out)
    check(re.search(r"^  stages +\[4\] \(auto\): pp0 embedding\.\.head$", out, re.M), "the stage line", out)
    # Each fact once: after the banner the trainer adds only what it measures and allocates.
    check(len(re.findall(r"M parameters", out)) == 1, "the parameter count once (the banner's model line)", out)
    check(re.search(r"^model: [0-9.]+ MFLOP per token; peak [0-9.]+ GFLOP/s per rank \(measured\)", out, re.M),
          "the trainer's line of the measured peak", out)
    check(re.search(r"^optimizer state: [0-9.]+ MiB per rank$", out, re.M), "the optimizer state line", out)
    check(re.search(r"^  predicted +\S+ \S+ per step, .* tokens/s, .*% MFU, .*\[cluster test_fast, ", out, re.M),
          "the prediction from --cluster", out)
    steps = re.findall(r"^step (\d+)/12 \|.*$", out, re.M)
    check(steps == ["1", "5", "10", "12"], f"step lines at 1, 5, 10, 12 (got {steps})", out)
    for line in re.findall(r"^step \d+/12 \|.*$", out, re.M):
        last = line.startswith("step 12/")
        check(last != bool(re.search(r" \| ETA \d+[smhd]", line)), f"ETA on every step line but the last: {line}", out)
    warnings = re.findall(r"^warning: steps 4-8 took .* per step \(median\) where the cost model predicted .* \([0-9.]+x; "
                          r"cluster test_fast, .*\); `tessera plan --calibrate` measures this machine again.*$", out, re.M)
    check(len(warnings) == 1, "exactly one step-time warning (a machine model 1000x too fast)", out)

    raw, out = train(MPIRUN, tessera, args.out / "tp2.jsonl", ["--set", "parallel.tensor_model_parallel_size=2"])
    check(b"\r" not in raw, "a '\\r' in the output of mpirun (its ranks see a pseudo-terminal)", out)
    check(re.search(r"^tessera \S+ \| world 2 = dp 1 x tp 2 x pp 1 ", out, re.M), "the banner of tp 2", out)
    check(len(re.findall(r"^tessera \S+ \| world", out, re.M)) == 1, "one banner (rank 0's)", out)
    check(re.search(r"^  predicted +none: no machine model \(run `tessera plan --calibrate` once", out, re.M),
          "without --cluster or a calibration: no prediction, and how to get one", out)

    for name in ("one_rank.jsonl", "tp2.jsonl"):
        rows = [json.loads(line) for line in (args.out / name).read_text().splitlines()]
        check([r["step"] for r in rows] == [1, 5, 10, 12], f"{name}: metrics of the logged steps", str(rows))
    print(f"check_train_output: banner, ETA, plain lines and the step-time warning as expected; metrics in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
