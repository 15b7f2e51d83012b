#!/usr/bin/env python3
"""Gradual pruning under parallel layouts: trains a tiny config with a prune.* schedule on one
rank and under each given layout (mpirun), and requires the same loss at every step (relative
tolerance) and, in the final checkpoint exported as global tensors, exactly the same pruned
(zero) entries, as many as the schedule's final sparsity asks. Standard library only."""
import argparse
import array
import json
import os
import struct
import subprocess
import sys
import tempfile

PRUNABLE = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


def run(cmd, timeout):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def zero_sets(path):
    """name -> the set of indices of exact zeros, for the prunable tensors of a safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or not (name == "lm_head.weight" or name.endswith(PRUNABLE)):
            continue
        if info["dtype"] != "F32":
            sys.exit(f"FAILED: {path}: {name} is {info['dtype']}, expected F32")
        begin, end = info["data_offsets"]
        values = array.array("f", data[begin:end])
        out[name] = {i for i, v in enumerate(values) if v == 0.0}
        out[name + "#numel"] = len(values)
    return out


def train(args, tmp, label, np, layout):
    metrics = os.path.join(tmp, label + ".jsonl")
    ckpt = os.path.join(tmp, label)
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(np), args.tessera, "train",
           args.config, "--set", f"log.metrics={metrics}", "--set", "log.interval=1",
           "--set", f"train.max_steps={args.steps}", "--set", "train.eval_interval=0", "--set", "train.threads=1",
           "--set", f"checkpoint.dir={ckpt}", "--set", f"checkpoint.interval={args.steps}"]
    for s in args.prune + layout:
        cmd += ["--set", s]
    log = run(cmd, args.timeout)
    exported = os.path.join(tmp, label + ".safetensors")
    run([args.tessera, "export", ckpt, "--safetensors", exported], args.timeout)
    with open(metrics) as f:
        losses = [json.loads(line)["loss"] for line in f]
    return losses, zero_sets(exported), log


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--prune", action="append", default=[], help="prune.* override for every run")
    p.add_argument("--layout", action="append", default=[],
                   help="NP:key=value,key=value (a parallel layout to compare with one rank)")
    p.add_argument("--sparsity", type=float, required=True,
                   help="expected final sparsity: of all prunable weights, or of each with prune.scope=layer")
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base_losses, base_zeros, log = train(args, tmp, "base", 1, [])
        if "prune: step" not in log:
            sys.exit(f"FAILED: no re-pruning was logged\n{log}")
        total = sum(v for k, v in base_zeros.items() if k.endswith("#numel"))
        pruned = sum(len(v) for k, v in base_zeros.items() if not k.endswith("#numel"))
        if "prune.scope=layer" in args.prune:
            for name, zeros in base_zeros.items():
                n = base_zeros.get(name + "#numel")
                if n is not None and len(zeros) != round(args.sparsity * n):
                    sys.exit(f"FAILED: 1 rank: {len(zeros)} of the {n} weights of {name} are zero, expected "
                             f"round({args.sparsity} * {n})")
        elif pruned != round(args.sparsity * total):
            sys.exit(f"FAILED: 1 rank: {pruned} of {total} prunable weights are zero, expected "
                     f"round({args.sparsity} * {total}) = {round(args.sparsity * total)}")
        for spec in args.layout:
            np, _, sets = spec.partition(":")
            layout = [s for s in sets.split(",") if s]
            label = spec.replace(":", "_").replace(",", "_").replace("=", "")
            losses, zeros, _ = train(args, tmp, label, int(np), layout)
            if len(losses) != len(base_losses):
                sys.exit(f"FAILED: {spec}: {len(losses)} logged steps, 1 rank {len(base_losses)}")
            for step, (b, q) in enumerate(zip(base_losses, losses), 1):
                if abs(b - q) > args.rtol * abs(b):
                    sys.exit(f"FAILED: {spec}: step {step} loss {q!r} vs {b!r} on 1 rank")
            for name in base_zeros:
                if zeros.get(name) != base_zeros[name]:
                    diff = len(zeros.get(name, set()) ^ base_zeros[name]) if not name.endswith("#numel") else "-"
                    sys.exit(f"FAILED: {spec}: the pruned entries of {name} differ from 1 rank's ({diff} differ)")
            print(f"OK: {spec}: same {pruned} pruned weights, max relative loss difference "
                  f"{max(abs(b - q) / abs(b) for b, q in zip(base_losses, losses)):.2e}")
    print(f"OK: {len(args.layout)} layouts, final sparsity {pruned}/{total}")


if __name__ == "__main__":
    main()
