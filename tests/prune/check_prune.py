#!/usr/bin/env python3
"""End-to-end check of `tessera prune` and fine-tuning from it (init.from) on a tiny GPT:
exact sparsity of --sparsity (global and layer scope) and --pattern 2:4 in the written masks;
fine-tunes under tp = 2, ZeRO-1 (dp = 2) and a resume under pp = 2 whose checkpoints keep every
masked weight and both AdamW moments exactly zero and the masks unchanged (compared after
`tessera reshard` back to one shard); a structurally pruned model (fewer heads and neurons)
training under tp = 2; and bad arguments failing with one line and exit code 1.
Usage: check_prune.py --tessera BIN --mpirun MPIRUN --config configs/tests/gpt_tiny.yaml"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from safetensors.numpy import load_file
except ImportError as error:
    print(f"skipped: {error}")
    sys.exit(77)

PRUNABLE = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


def fail(message):
    sys.exit(f"FAILED: {message}")


def run(cmd, expect=0, timeout=300):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != expect:
        fail(f"exit {r.returncode} (expected {expect}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


def train(args, np_, config, ckpt, steps, sets):
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(np_), args.tessera, "train", config,
           "--set", f"checkpoint.dir={ckpt}", "--set", f"checkpoint.interval={steps}",
           "--set", f"train.max_steps={steps}", "--set", "train.threads=1", "--set", "train.peak_tflops=1",
           "--set", "train.eval_interval=0", "--set", "log.metrics=", "--set", "log.interval=1"]
    for s in sets:
        cmd += ["--set", s]
    return run(cmd).stdout


def step_dir(ckpt):
    with open(os.path.join(ckpt, "latest")) as f:
        return os.path.join(ckpt, f.read().strip())


def shards(ckpt):
    files = sorted(glob.glob(os.path.join(step_dir(ckpt), "*.safetensors")))
    return [load_file(f) for f in files]


def one_shard(ckpt):
    s = shards(ckpt)
    if len(s) != 1:
        fail(f"{ckpt}: {len(s)} shard files, expected 1")
    return s[0]


def masks_of(tensors):
    return {k[len("mask."):]: v for k, v in tensors.items() if k.startswith("mask.")}


def is_prunable(name):
    return name == "lm_head.weight" or name.endswith(PRUNABLE)


def check_pruned(ckpt, what):
    """Every prunable weight, and only those, has a mask; weights are zero where masked."""
    t = one_shard(ckpt)
    masks = masks_of(t)
    params = sorted(k[len("param."):] for k in t if k.startswith("param."))
    want = sorted(n for n in params if is_prunable(n))
    if sorted(masks) != want:
        fail(f"{what}: masks for {sorted(masks)}, expected {want}")
    for name, m in masks.items():
        if np.any(t["param." + name][m == 0] != 0):
            fail(f"{what}: {name} has nonzero weights where its mask prunes")
    return masks


def check_hold(ckpt, what):
    """In every shard of a fine-tuned checkpoint: masked weights and moments exactly zero."""
    count = 0
    for t in shards(ckpt):
        for name, m in masks_of(t).items():
            for prefix in ("param.", "exp_avg.", "exp_avg_sq."):
                if np.any(t[prefix + name][m == 0] != 0):
                    fail(f"{what}: {prefix}{name} is nonzero where the mask prunes")
            count += 1
    if count == 0:
        fail(f"{what}: the checkpoint has no masks")
    return count


def check_same_masks(args, ckpt, pruned, tmp, what):
    """Resharded to one shard, the fine-tuned masks equal the pruned ones and the kept weights moved."""
    out = os.path.join(tmp, "reshard_" + what)
    run([args.tessera, "reshard", ckpt, out, "--set", "parallel.tensor_model_parallel_size=1",
         "--set", "parallel.pipeline_model_parallel_size=1", "--set", "parallel.data_parallel_size=1",
         "--set", "parallel.zero_stage=0", "--set", "parallel.sequence_parallel=false"])
    got = one_shard(out)
    before = one_shard(pruned)
    for name, m in masks_of(before).items():
        if not np.array_equal(got["mask." + name], m):
            fail(f"{what}: the mask of {name} changed during fine-tuning")
        if np.array_equal(got["param." + name], before["param." + name]):
            fail(f"{what}: {name} did not train")


def bad(args, extra, expect, base):
    r = run([args.tessera, "prune", base, "-o", os.path.join(os.path.dirname(base), "never")] + extra, expect=1)
    lines = r.stderr.strip().splitlines()
    if len(lines) != 1 or expect not in lines[0]:
        fail(f"prune {' '.join(extra)}: expected one line with {expect!r}, got {r.stderr!r}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "base")
        train(args, 1, args.config, base, 4, [])

        # Unstructured: exact counts in the written masks.
        p50 = os.path.join(tmp, "p50")
        run([args.tessera, "prune", base, "--sparsity", "0.5", "-o", p50])
        masks = check_pruned(p50, "--sparsity 0.5")
        total = sum(m.size for m in masks.values())
        zeros = sum(int((m == 0).sum()) for m in masks.values())
        if zeros != round(0.5 * total):
            fail(f"--sparsity 0.5 (global): {zeros} of {total} pruned")
        layer = os.path.join(tmp, "layer")
        run([args.tessera, "prune", base, "--sparsity", "0.3", "--scope", "layer", "-o", layer])
        for name, m in check_pruned(layer, "--scope layer").items():
            if int((m == 0).sum()) != round(0.3 * m.size):
                fail(f"--scope layer: {name} has {int((m == 0).sum())} of {m.size} pruned")
        p24 = os.path.join(tmp, "p24")
        run([args.tessera, "prune", base, "--pattern", "2:4", "-o", p24])
        for name, m in check_pruned(p24, "--pattern 2:4").items():
            groups = (m != 0).reshape(m.shape[0], -1, 4).sum(axis=2)
            if not np.all(groups == 2):
                fail(f"--pattern 2:4: {name} has groups with {sorted(set(groups.ravel()))} nonzeros")

        # Fine-tuning keeps the masks: tp = 2, then resumed under pp = 2; ZeRO-1 with 2:4.
        ft = os.path.join(tmp, "ft")
        out = train(args, 2, args.config, ft, 3, [f"init.from={p50}", "parallel.tensor_model_parallel_size=2"])
        if "init: weights from" not in out:
            fail(f"the tp = 2 run did not report init.from:\n{out}")
        check_hold(ft, "tp = 2")
        check_same_masks(args, ft, p50, tmp, "tp2")
        out = train(args, 2, args.config, ft, 5, [f"init.from={p50}", "parallel.pipeline_model_parallel_size=2",
                                                  "checkpoint.resume=auto"])
        if "resumed from" not in out or "init: weights" in out:
            fail(f"the pp = 2 run did not resume (a checkpoint wins over init.from):\n{out}")
        check_hold(ft, "resumed under pp = 2")
        check_same_masks(args, ft, p50, tmp, "pp2")
        zero = os.path.join(tmp, "zero")
        train(args, 2, args.config, zero, 3, [f"init.from={p24}", "parallel.zero_stage=1"])
        check_hold(zero, "ZeRO-1")
        check_same_masks(args, zero, p24, tmp, "zero1")

        # Structured: a smaller dense model with its config, trained under tp = 2.
        small = os.path.join(tmp, "small")
        r = run([args.tessera, "prune", base, "--structured", "neurons=0.5,heads=0.5", "-o", small])
        if "heads 4 -> 2 (head_dim 8), ffn 64 -> 32" not in r.stdout:
            fail(f"structured prune printed:\n{r.stdout}")
        t = one_shard(small)
        if t["param.h.0.attn.c_attn.weight"].shape != (48, 32) or t["param.h.1.mlp.c_proj.weight"].shape != (32, 32):
            fail("structured prune: unexpected shapes " + str(t["param.h.0.attn.c_attn.weight"].shape))
        if masks_of(t):
            fail("structured prune wrote masks")
        out = train(args, 2, os.path.join(small, "config.yaml"), os.path.join(tmp, "small_ft"), 2,
                    [f"init.from={small}", "parallel.tensor_model_parallel_size=2"])
        if "init: weights from" not in out:
            fail(f"the smaller model did not start from its checkpoint:\n{out}")
        run([args.tessera, "prune", base, "--structured", "heads=0.25", "--importance", "activation",
             "-o", os.path.join(tmp, "act")])

        # Bad arguments: one line, exit 1.
        bad(args, ["--sparsity", "1.0"], "--sparsity 1: must be in [0, 1)", base)
        bad(args, ["--sparsity", "-0.5"], "--sparsity -0.5: must be in [0, 1)", base)
        bad(args, ["--pattern", "3:2"], "--pattern 3:2: must be N:M with 0 < N < M", base)
        bad(args, ["--pattern", "2:4", "--sparsity", "0.5"], "exclude each other", base)
        bad(args, ["--scope", "row", "--sparsity", "0.5"], "--scope row: must be global or layer", base)
        bad(args, [], "say what to prune", base)
        bad(args, ["--structured", "heads=0.9"], "would remove 4 of the 4 heads of each block (at most 3)", base)
        bad(args, ["--structured", "heads=0.25", "--set", "parallel.tensor_model_parallel_size=2"],
            "leaves 3 heads per block, not divisible by parallel.tensor_model_parallel_size = 2", base)
        bad(args, ["--structured", "heads=0.5", "--importance", "gradient"], "--importance gradient", base)
    print("OK: prune sparsity/2:4 exact, masks held through tp 2, pp 2 resume and ZeRO-1, structured model trains "
          "under tp 2, bad arguments refused")


if __name__ == "__main__":
    main()
