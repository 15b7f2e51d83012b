"""Structured pruning of a Llama end to end: `tessera prune --structured` on a GQA llama (8 query
heads in 4 key/value groups, SwiGLU 64) removes half the groups, half the query heads of each
kept group and half the SwiGLU channels. Checked against an independent reference: the
original model exported to transformers with the removed rows and columns zeroed (found by
matching the pruned tensors' rows against the original's) gives the pruned model's logits, in
transformers (its own repeat_kv on the smaller config) and in onnxruntime (`export --onnx`).
The pruned checkpoint then trains under tp 2 from `init.from`; bad arguments are one line.

Usage: check_prune_llama.py --tessera BUILD/launcher/tessera --mpirun MPIEXEC  (from the repository root)
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM

CONFIG = "configs/tests/llama_tiny.yaml"
D = 4  # head_dim of llama_tiny: hidden 32 / 8 heads


def fail(message):
    sys.exit(f"FAILED: {message}")


def run(cmd, expect=0):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != expect:
        fail(f"exit {r.returncode} (expected {expect}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def matching_rows(small, big, width):
    """Indices of the `width`-row blocks of `big` that `small`'s blocks equal, in order."""
    blocks = big.reshape(-1, width, big.shape[1])
    found = []
    for block in small.reshape(-1, width, small.shape[1]):
        hits = [i for i, b in enumerate(blocks) if np.array_equal(b, block)]
        if len(hits) != 1:
            fail(f"a pruned block matches {len(hits)} blocks of the original")
        found.append(hits[0])
    if found != sorted(found):
        fail(f"kept blocks out of order: {found}")
    return found


def masked_original(big, small, layers):
    """The original HF weights with every structure the pruned model lacks zeroed."""
    masked = {k: v.copy() for k, v in big.items()}
    for layer in range(layers):
        p = f"model.layers.{layer}."
        heads = matching_rows(small[p + "self_attn.q_proj.weight"], big[p + "self_attn.q_proj.weight"], D)
        groups = matching_rows(small[p + "self_attn.k_proj.weight"], big[p + "self_attn.k_proj.weight"], D)
        if matching_rows(small[p + "self_attn.v_proj.weight"], big[p + "self_attn.v_proj.weight"], D) != groups:
            fail(f"layer {layer}: k and v keep different groups")
        per_group = big[p + "self_attn.q_proj.weight"].shape[0] // D // (big[p + "self_attn.k_proj.weight"].shape[0] // D)
        kept_per_group = len(heads) // len(groups)
        if [h // per_group for h in heads] != [g for g in groups for _ in range(kept_per_group)]:
            fail(f"layer {layer}: kept heads {heads} do not sit {kept_per_group} per kept group {groups}")
        channels = matching_rows(small[p + "mlp.gate_proj.weight"], big[p + "mlp.gate_proj.weight"], 1)
        if matching_rows(small[p + "mlp.up_proj.weight"], big[p + "mlp.up_proj.weight"], 1) != channels:
            fail(f"layer {layer}: gate and up keep different channels")
        drop_heads = [r for h in range(big[p + "self_attn.q_proj.weight"].shape[0] // D) if h not in heads
                      for r in range(h * D, h * D + D)]
        drop_channels = [c for c in range(big[p + "mlp.gate_proj.weight"].shape[0]) if c not in channels]
        masked[p + "self_attn.q_proj.weight"][drop_heads] = 0
        masked[p + "self_attn.o_proj.weight"][:, drop_heads] = 0
        masked[p + "mlp.gate_proj.weight"][drop_channels] = 0
        masked[p + "mlp.up_proj.weight"][drop_channels] = 0
        masked[p + "mlp.down_proj.weight"][:, drop_channels] = 0
        print(f"layer {layer}: kept groups {groups}, heads {heads}, {len(channels)} channels")
    return masked


def logits(hf_dir, tokens, weights=None):
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    if weights is not None:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    with torch.no_grad():
        return model(torch.from_numpy(tokens)).logits.numpy()


def check_reference(args, base, small, tmp):
    big_hf, small_hf = os.path.join(tmp, "big_hf"), os.path.join(tmp, "small_hf")
    run([args.tessera, "export", base, "--hf", big_hf])
    run([args.tessera, "export", small, "--hf", small_hf])
    big_w = load_file(os.path.join(big_hf, "model.safetensors"))
    small_w = load_file(os.path.join(small_hf, "model.safetensors"))
    tokens = np.random.default_rng(7).integers(0, big_w["model.embed_tokens.weight"].shape[0], size=(3, 16))
    want = logits(big_hf, tokens, masked_original(big_w, small_w, 2))
    got = logits(small_hf, tokens)
    dense = logits(big_hf, tokens)
    rel = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
    if not rel <= 1e-5:
        fail(f"the pruned model's logits differ from the masked original's: {rel:.2e}")
    changed = float(np.max(np.abs(dense - want)) / np.max(np.abs(want)))
    if not changed > 1e-2:
        fail(f"masking changed the logits by only {changed:.2e}: the test would not see a wrong cut")
    print(f"transformers: pruned logits equal the masked original's ({rel:.1e}; masking changes them by {changed:.2f})")
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: ONNX export of the pruned model only written, not run")
        ort = None
    onnx_path = os.path.join(tmp, "small.onnx")
    run([args.tessera, "export", small, "--onnx", onnx_path])
    if ort is not None:
        (onnx_logits,) = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(
            ["logits"], {"tokens": tokens.astype(np.int64)})
        rel = float(np.max(np.abs(onnx_logits - want)) / np.max(np.abs(want)))
        if not rel <= 1e-5:
            fail(f"the pruned model's ONNX logits differ from the masked original's: {rel:.2e}")
        print(f"onnxruntime: the pruned model's export gives the same logits ({rel:.1e})")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    args = p.parse_args()
    mpirun = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "--bind-to", "none"]
    common = ["--set", "train.threads=1", "--set", "model.init_std=0.2", "--set", "log.interval=100"]
    with tempfile.TemporaryDirectory(prefix="tessera_prune_llama_") as tmp:
        base, small = os.path.join(tmp, "base"), os.path.join(tmp, "small")
        run([args.tessera, "train", CONFIG, "--set", f"checkpoint.dir={base}", "--set", "train.max_steps=3",
             "--set", "checkpoint.interval=3", *common])
        out = run([args.tessera, "prune", base, "--structured", "groups=0.5,heads=0.5,neurons=0.5", "-o", small])
        if "heads 8 -> 2 (head_dim 4), key/value groups 4 -> 2, ffn 64 -> 32" not in out:
            fail(f"structured prune printed:\n{out}")
        check_reference(args, base, small, tmp)

        # The smaller model trains from its checkpoint under tp 2 (which splits its 2 groups).
        out = run(mpirun + ["-np", "2", args.tessera, "train", os.path.join(small, "config.yaml"),
                            "--set", f"init.from={small}", "--set", "parallel.tensor_model_parallel_size=2",
                            "--set", f"checkpoint.dir={tmp}/small_ft", "--set", "train.max_steps=2", *common])
        if "init: weights from" not in out:
            fail(f"the pruned model did not start from its checkpoint:\n{out}")
        run([args.tessera, "prune", base, "--structured", "heads=0.5", "--importance", "activation",
             "-o", os.path.join(tmp, "act")])

        for flags, expect in [
            (["heads=0.75"], "would remove 2 of the 2 query heads of each key/value group (at most 1)"),
            (["groups=0.25", "--set", "parallel.tensor_model_parallel_size=2"],
             "leaves 3 key/value groups per block, not divisible by parallel.tensor_model_parallel_size = 2"),
        ]:
            err = run([args.tessera, "prune", base, "--structured", *flags, "-o", os.path.join(tmp, "bad")], expect=1)
            if expect not in err or len(err.strip().splitlines()) != 1 or os.path.exists(os.path.join(tmp, "bad")):
                fail(f"--structured {' '.join(flags)}: expected one line with {expect!r}, got:\n{err}")
    print("OK: llama structured pruning equals masking (transformers, onnxruntime), trains under tp 2, "
          "bad arguments refused")


if __name__ == "__main__":
    main()
