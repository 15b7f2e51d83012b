#!/usr/bin/env python3
"""Peak per-rank memory and dp traffic of ZeRO stages 0-3: measured, planner, ZeRO paper.

Trains a GPT whose parameters dominate its memory (8 x 256, 6.3M parameters, 16-token
sequences, one microbatch of one sample per rank) for 2 steps under `mpirun -np DP` at each
ZeRO stage, reads the peak tensor memory every rank reports at the end of the run
("peak tensor memory / microbatches in flight per rank"; the steps', counted after the start-up
GEMM roof) and the set-up's peak (data, layers built and sharded: "set-up peak tensor memory per
rank"), and prints them next to `tessera plan --config-layout`'s prediction for the
same layout and the paper's model states for fp32 training (weights 4, gradients 4, Adam
moments 8 bytes per parameter: 16 Psi at stage 0; 8 Psi + 8 Psi/N; 4 Psi + 12 Psi/N; 16 Psi/N),
or with --precision bf16 mixed precision's (2 + 2 + 12: 16 Psi; 4 Psi + 12 Psi/N; 2 Psi + 14 Psi/N;
16 Psi/N).
A second table: the data-parallel bytes per step each rank sends, from the communicator's
payload counters ("dp traffic per step" at the end of the run, a ring's share of them),
against the planner's dp_bytes (partitioner/zero_model.h), as a multiple of ZeRO-1's.

  python3 bench/zero_memory.py --tessera build/launcher/tessera [--dp 2,4,8] [--precision bf16]
      [--config configs/tests/llama_tiny.yaml --set model.untie_embeddings_and_output_weights=false]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

SETS = ["model.num_layers=8", "model.hidden_size=256", "model.num_attention_heads=4", "model.ffn_hidden_size=1024",
        "model.seq_length=16", "train.micro_batch_size=1", "train.max_steps=2", "train.eval_interval=0",
        "log.interval=1"]
# Model states in bytes per parameter, (replicated, sharded over N): the paper's fp32 training
# (4 + 4 + 8) and mixed precision (2 + 2 + 12: bf16 weights and gradients, fp32 master + moments).
THEORY = {"fp32": {0: (16, 0), 1: (8, 8), 2: (4, 12), 3: (0, 16)},
          "bf16": {0: (16, 0), 1: (4, 12), 2: (2, 14), 3: (0, 16)}}
PEAK = re.compile(r"peak tensor memory / microbatches in flight per rank: (.*)")
SETUP = re.compile(r"set-up peak tensor memory per rank: (.*)")
TRAFFIC = re.compile(r"dp traffic per step \(this rank\):.* a ring sends ([0-9.]+) MiB")


def layout_sets(args, dp, stage):
    return SETS + args.set + [f"train.global_batch_size={dp}", f"parallel.zero_stage={stage}", f"train.precision={args.precision}"]


def measure(args, dp, stage):
    sets = layout_sets(args, dp, stage)
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(dp), args.tessera, "train",
           args.config, "--set", *sets]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line, setup, traffic = PEAK.search(out), SETUP.search(out), TRAFFIC.search(out)
    if not line or not setup or not traffic:
        sys.exit(f"no peak memory or traffic line in the output of {' '.join(cmd)}")
    peak, setup_peak = (max(float(part.split(" MiB")[0]) for part in m.group(1).split(", ")) * 2**20
                        for m in (line, setup))
    return peak, setup_peak, float(traffic.group(1)) * 2**20


def predict(args, dp, stage):
    sets = layout_sets(args, dp, stage)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "plan.json")
        subprocess.run([args.tessera, "plan", args.config, "--world", str(dp), "--cluster", args.cluster,
                        "--config-layout", "--json", out, "--set", *sets], check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            plan = json.load(f)
    params = float(plan["model"].split(",")[1].split("M")[0]) * 1e6
    predicted = plan["predicted"]
    return predicted["peak_memory_bytes"], predicted["breakdown"]["dp_bytes"], params


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tessera", default="build/launcher/tessera")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--config", default="configs/tests/gpt_tiny.yaml")
    ap.add_argument("--cluster", default="configs/clusters/h100_nvlink.yaml")
    ap.add_argument("--dp", default="2,4,8")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--set", action="append", default=[], help="another config override (e.g. a Llama model's)")
    args = ap.parse_args()
    print("| dp | stage | measured peak MiB | planner MiB | planner / measured | paper model states MiB "
          "| set-up peak MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    traffic = []
    for dp in [int(x) for x in args.dp.split(",")]:
        for stage in range(4):
            measured, setup, sent = measure(args, dp, stage)
            planned, planned_sent, params = predict(args, dp, stage)
            traffic.append((dp, stage, sent, planned_sent))
            rep, shard = THEORY[args.precision][stage]
            theory = params * (rep + shard / dp)
            ratio = planned / measured
            worst = max(worst, abs(ratio - 1))
            print(f"| {dp} | {stage} | {measured / 2**20:.1f} | {planned / 2**20:.1f} | {ratio:.3f} | "
                  f"{theory / 2**20:.1f} | {setup / 2**20:.1f} |", flush=True)
    print(f"\nlargest planner error: {100 * worst:.1f}%\n")
    print("| dp | stage | measured MiB sent per step | planner MiB | measured / ZeRO-1's |")
    print("|---:|---:|---:|---:|---:|")
    zero1 = {dp: sent for dp, stage, sent, _ in traffic if stage == 1}
    for dp, stage, sent, planned_sent in traffic:
        print(f"| {dp} | {stage} | {sent / 2**20:.2f} | {planned_sent / 2**20:.2f} | {sent / zero1[dp]:.2f} |")


if __name__ == "__main__":
    main()
