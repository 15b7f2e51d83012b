#!/usr/bin/env python3
"""ZeRO-3 under bf16 moves half the bytes: the communicator's per-step payload counters (the
trainer's `dp traffic per step` line) of a dp 2 ZeRO-3 run in fp32, in bf16 (gathers in bf16,
gradients reduce-scattered in fp32) and in bf16 with parallel.grad_reduce_dtype bf16. The
all-gathers of both bf16 runs are half the fp32 run's; the reduce-scatter is the fp32 run's
with fp32 reduction and half of it with bf16 reduction. Every unit is padded to a multiple of
dp in elements, so the halves are exact up to the line's printed digits.

Usage: check_zero_bf16_traffic.py --tessera EXE --mpirun MPIRUN --config GPT_TINY.yaml"""
import argparse
import re
import subprocess
import sys

LINE = re.compile(r"dp traffic per step \(this rank\): all-reduce ([\d.]+) MiB, all-gather ([\d.]+) MiB, "
                  r"reduce-scatter ([\d.]+) MiB")


def traffic(args, sets):
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "2", args.tessera, "train", args.config,
           "--set", "parallel.zero_stage=3", "--set", "train.max_steps=2", "--set", "train.threads=1"]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = LINE.search(r.stdout + r.stderr)
    if r.returncode != 0 or m is None:
        sys.exit(f"FAILED: {' '.join(cmd)} exited {r.returncode} without a traffic line:\n{r.stdout}\n{r.stderr}")
    return {"all-gather": float(m.group(2)), "reduce-scatter": float(m.group(3))}


def expect(name, got, want):
    # 0.0015 MiB: the line prints 3 decimals, and each of the compared numbers is rounded.
    if abs(got - want) > 0.0015 or got == 0:
        sys.exit(f"FAILED: {name}: {got:.3f} MiB, expected {want:.4f} MiB")
    print(f"OK: {name}: {got:.3f} MiB (expected {want:.4f})")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    args = p.parse_args()
    fp32 = traffic(args, [])
    bf16 = traffic(args, ["train.precision=bf16"])
    both = traffic(args, ["train.precision=bf16", "parallel.grad_reduce_dtype=bf16"])
    print(f"fp32: {fp32}")
    expect("bf16 all-gather", bf16["all-gather"], fp32["all-gather"] / 2)
    expect("bf16 reduce-scatter (fp32 reduction)", bf16["reduce-scatter"], fp32["reduce-scatter"])
    expect("bf16 all-gather (bf16 reduction)", both["all-gather"], fp32["all-gather"] / 2)
    expect("bf16 reduce-scatter (bf16 reduction)", both["reduce-scatter"], fp32["reduce-scatter"] / 2)


if __name__ == "__main__":
    main()
