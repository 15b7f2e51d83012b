#!/usr/bin/env python3
"""ZeRO stages 0-3 as the planner sizes them, next to the ZeRO paper's model-state formulas.

For a GPT whose parameters dominate its memory, runs `tessera plan --config-layout --json` for
each ZeRO stage and data-parallel size and prints two markdown tables for docs/zero.md:

  1. per-rank model states (parameters + gradients + optimizer state + gathered units) and the
     whole predicted peak, against the paper's formula (mixed precision: weights 2, gradients
     2, Adam state with fp32 master 12 bytes per parameter -> Psi (2 + 2 + 12) / N_d sharded at
     stage 3; the fp32 equivalent 4 + 4 + 8);
  2. data-parallel bytes each rank sends per step, against the ring formulas.

The planner's gradients are fp32 (the runtime reduces them in fp32), so its mixed-precision
states differ from the paper's by 2 bytes per gradient element held.

  python3 bench/zero_plan_table.py --tessera build/launcher/tessera
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

MODEL = {  # GPT-2 medium's shape: 24 x 1024, ~300M parameters with a character vocabulary
    "model.num_layers": 24,
    "model.hidden_size": 1024,
    "model.num_attention_heads": 16,
    "model.ffn_hidden_size": 4096,
    "model.seq_length": 256,
    "train.micro_batch_size": 1,
}

# Bytes per parameter (replicated, sharded) of model states in the ZeRO paper, per stage.
THEORY = {
    "bf16": {0: (16, 0), 1: (4, 12), 2: (2, 14), 3: (0, 16)},
    "fp32": {0: (16, 0), 1: (8, 8), 2: (4, 12), 3: (0, 16)},
}


def plan(tessera, config, cluster, dp, stage, precision, microbatches):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "plan.json")
        sets = [f"{k}={v}" for k, v in MODEL.items()]
        sets += [f"parallel.zero_stage={stage}", f"train.precision={precision}",
                 f"train.global_batch_size={dp * microbatches}"]
        cmd = [tessera, "plan", config, "--world", str(dp), "--cluster", cluster, "--config-layout",
               "--json", out, "--set", *sets]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)


def gib(b):
    return f"{b / 2**30:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tessera", default="build/launcher/tessera")
    ap.add_argument("--config", default="configs/shakespeare_char.yaml")
    ap.add_argument("--cluster", default="configs/clusters/h100_nvlink.yaml")
    ap.add_argument("--microbatches", type=int, default=1)
    args = ap.parse_args()

    print("| precision | dp | stage | planner model states GiB | theory GiB | planner / theory | planner peak GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    traffic = []
    for precision in ("bf16", "fp32"):
        for dp in (2, 4, 8):
            for stage in range(4):
                p = plan(args.tessera, args.config, args.cluster, dp, stage, precision, args.microbatches)
                mem = p["predicted"]["memory_per_stage"][0]
                states = mem["params"] + mem["grads"] + mem["optimizer"] + mem.get("gathered", 0)
                psi = sum_params(p)
                rep, shard = THEORY[precision][stage]
                theory = psi * (rep + shard / dp)
                print(f"| {precision} | {dp} | {stage} | {gib(states)} | {gib(theory)} | {states / theory:.3f} | "
                      f"{gib(p['predicted']['peak_memory_bytes'])} |")
                if precision == "fp32":
                    traffic.append((dp, stage, p["predicted"]["breakdown"]["dp_bytes"], psi))
    print()
    m = args.microbatches
    print(f"| dp | stage | planner bytes sent per rank per step (m = {m}) | ring theory | / ZeRO-1 |")
    print("|---:|---:|---:|---:|---:|")
    for dp, stage, sent, psi in traffic:
        share = (dp - 1) / dp * 4 * psi  # one fp32 reduce-scatter or all-gather
        theory = {0: 2, 1: 2, 2: m + 1, 3: 3 * m}[stage] * share
        print(f"| {dp} | {stage} | {sent / 2**20:.1f} MiB | {theory / 2**20:.1f} MiB | {sent / (2 * share):.2f} |")


def sum_params(p):
    """Parameters of the model, from the plan's description ("gpt 24x1024, 302.34M params")."""
    text = p["model"]
    return float(text.split(",")[1].split("M")[0]) * 1e6


if __name__ == "__main__":
    sys.exit(main())
