#!/usr/bin/env python3
"""Layout invariance check: trains a config on one rank and under a parallel layout (mpirun
-np N with --set overrides) and requires the same loss (and grad norm) at every step, and the
same validation loss at every evaluation, within a relative tolerance; and that the parallel
run shows, in its own banner, log and metrics, the layout it was asked for (layout_evidence.py).

The one-rank run can be shared: --reference-out FILE only runs it and keeps its metrics, and
--reference FILE compares with those instead of running it again (the layout matrix's CTest
fixture). Used by the multi-rank CTest tests; standard library only."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import layout_evidence


def train(args, np, overrides, metrics):
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(np), args.tessera,
           "train", args.config, "--set", f"log.metrics={metrics}", "--set", "log.interval=1",
           "--set", f"train.max_steps={args.steps}", "--set", "train.eval_interval=10",
           "--set", "train.eval_iters=2",
           "--set", "train.threads=1"]
    for o in args.common + overrides:
        cmd += ["--set", o]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if result.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    with open(metrics) as f:
        return [json.loads(line) for line in f], result.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    p.add_argument("--np", type=int, required=True)
    p.add_argument("--set", dest="layout", action="append", default=[], help="layout override")
    p.add_argument("--common", action="append", default=[], help="override for both runs")
    p.add_argument("--keys", default="loss,grad_norm,val_loss",
                   help="metrics compared (grad_norm is per replica with local_sgd / diloco)")
    p.add_argument("--base-np", type=int, default=1, help="ranks of the reference run")
    p.add_argument("--base-set", action="append", default=[], help="override for the reference run")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--host-waits",
                   help="GPU runs: the host waits each step of the parallel run must log, exactly: N, or a "
                        "comma-separated pattern repeated over the steps (DiLoCo H=3: 1,1,2)")
    p.add_argument("--reference", help="the one-rank run's metrics, written by --reference-out")
    p.add_argument("--reference-out", help="run only the one-rank reference and write its metrics here")
    args = p.parse_args()
    if args.reference_out:
        base, _ = train(args, args.base_np, args.base_set, args.reference_out)
        print(f"OK: the one-rank reference, {len(base)} steps, in {args.reference_out}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.reference:
            with open(args.reference) as f:
                base = [json.loads(line) for line in f]
        else:
            base, _ = train(args, args.base_np, args.base_set, os.path.join(tmp, "base.jsonl"))
        par, output = train(args, args.np, args.layout, os.path.join(tmp, "par.jsonl"))
    want = layout_evidence.requested(args.np, args.layout)
    problems = layout_evidence.check(want, output, par[-1] if par else {})
    if problems:
        sys.exit("FAILED: the run does not show the layout asked for:\n  " + "\n  ".join(problems) + f"\n{output}")
    if len(base) != args.steps or len(par) != args.steps:
        sys.exit(f"FAILED: expected {args.steps} logged steps, got {len(base)} and {len(par)}")
    if args.host_waits is not None:
        pattern = [int(w) for w in args.host_waits.split(",")]
        waits = [q.get("host_waits") for q in par]
        expected = [pattern[i % len(pattern)] for i in range(len(waits))]
        if waits != expected:
            sys.exit(f"FAILED: host waits per step {waits}, expected {expected}")
    worst = 0.0
    for b, q in zip(base, par):
        for key, rtol in (("loss", args.rtol), ("grad_norm", 10 * args.rtol), ("val_loss", args.rtol)):
            if key not in args.keys.split(","):
                continue
            if (key in b) != (key in q):
                sys.exit(f"FAILED at step {b['step']}: {key} logged by one run only")
            if key not in b:
                continue
            rel = abs(b[key] - q[key]) / max(abs(b[key]), 1e-12)
            worst = max(worst, rel if key == "loss" else 0.0)
            if rel > rtol:
                sys.exit(f"FAILED at step {b['step']}: {key} {q[key]!r} (np={args.np}, "
                         f"{' '.join(args.layout)}) vs {b[key]!r} (np={args.base_np} {' '.join(args.base_set)}): "
                         f"relative {rel:.2e} > {rtol:g}")
    print(f"OK: {args.steps} steps, np={args.np} = dp {want['dp']} x tp {want['tp']} x pp {want['pp']} "
          f"({want['schedule']}, v {want['v']}, sp {want['sp']}, zero {want['zero']}, recompute {want['recompute']}; "
          f"banner, in-flight counts and metrics agree) {' '.join(args.layout)}: max relative loss "
          f"difference {worst:.2e} (first {base[0]['loss']:.6f}, last {base[-1]['loss']:.6f})")


if __name__ == "__main__":
    main()
