"""Hugging Face interoperability: trains a tiny model (one rank, or a layout under mpirun),
exports it with `tessera export --hf`, loads the directory with transformers'
AutoModelForCausalLM.from_pretrained (no missing, unexpected or misshapen weights allowed),
and compares its logits with Tessera's own (the training Model at tp 1,
tessera_onnx_reference_logits) on random token batches: max|hf - tessera| / max|tessera| <= rtol.
Then the other way: the transformers model written by save_pretrained is imported with
`tessera import --hf`, gives the same logits, and trains on under a parallel layout
(init.from); broken directories (another architecture, a missing / extra / misshapen tensor)
fail with one line naming the file and write nothing. Exit 77 (skipped) only when torch or
transformers cannot be imported."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
except ImportError as error:
    print(f"skipped: torch/transformers cannot be imported ({error}); scripts/install_deps.sh pip-installs them")
    sys.exit(77)
import numpy as np
from safetensors.numpy import load_file, save_file


def run(cmd, expect=0):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if result.returncode != expect:
        sys.exit(f"exit {result.returncode} (expected {expect}): {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def tessera_cmd(args, np_, cmd):
    if np_ > 1:
        return [args.mpirun, "-np", str(np_), *args.mpirun_flags.split(), args.tessera, *cmd]
    return [args.tessera, *cmd]


def train(args, checkpoint_dir, np_, extra):
    cmd = ["train", args.config, "--set", f"train.max_steps={args.steps}", "--set", f"checkpoint.dir={checkpoint_dir}",
           "--set", f"checkpoint.interval={args.steps}", "--set", "train.threads=1", "--set", "log.interval=100"]
    for s in args.set + extra:
        cmd += ["--set", s]
    return run(tessera_cmd(args, np_, cmd))


def tessera_logits(args, checkpoint, tokens, tmp):
    tokens_path, out = os.path.join(tmp, "tokens.safetensors"), os.path.join(tmp, "ref.safetensors")
    save_file(tokens, tokens_path)
    run([args.reference, checkpoint, tokens_path, out])
    return load_file(out)


def hf_logits(model, tokens):
    with torch.no_grad():
        return {k: model(input_ids=torch.from_numpy(t.astype(np.int64))).logits.numpy() for k, t in tokens.items()}


def compare(what, got, want, rtol):
    worst = 0.0
    for key, t in want.items():
        g = got["tokens." + key.split(".")[1]]
        assert g.shape == t.shape, f"{what} {key}: shape {g.shape} != {t.shape}"
        rel = float(np.max(np.abs(g - t)) / np.max(np.abs(t)))
        worst = max(worst, rel)
        if not rel <= rtol:
            sys.exit(f"{what}: {key} differs from Tessera's logits: {rel:.3e} > {rtol:g}")
    print(f"{what}: max relative error {worst:.2e} (tolerance {rtol:g})")


def load_hf(directory):
    model, info = AutoModelForCausalLM.from_pretrained(directory, output_loading_info=True, dtype=torch.float32)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(kind):
            sys.exit(f"from_pretrained({directory}): {kind} {info[kind]}")
    return model.eval()


def check_bad_inputs(args, good_dir, tmp):
    """Each broken copy of good_dir: exit 1, one line naming the file, no checkpoint written."""
    weights = load_file(os.path.join(good_dir, "model.safetensors"))
    name = sorted(weights)[0]
    cases = {
        "architecture": ({"model_type": "bert", "architectures": ["BertModel"]}, None, "config.json"),
        "missing": (None, {k: v for k, v in weights.items() if k != name}, "missing tensor"),
        "extra": (None, {**weights, "model.extra.weight": np.zeros(3, np.float32)}, "unexpected tensor"),
        "misshapen": (None, {**weights, name: np.zeros((2, 2), np.float32)}, "has shape"),
    }
    for case, (config_patch, tensors, needle) in cases.items():
        bad = os.path.join(tmp, f"bad_{case}")
        shutil.copytree(good_dir, bad)
        if config_patch:
            path = os.path.join(bad, "config.json")
            config = json.load(open(path))
            config.update(config_patch)
            json.dump(config, open(path, "w"))
        if tensors is not None:
            save_file(tensors, os.path.join(bad, "model.safetensors"), metadata={"format": "pt"})
        out = os.path.join(tmp, f"ckpt_{case}")
        text = run([args.tessera, "import", "--hf", bad, "-o", out], expect=1).strip()
        lines = text.splitlines()
        if len(lines) != 1 or needle not in text or bad not in text or os.path.exists(out):
            sys.exit(f"bad input '{case}': expected one line naming {bad} and '{needle}', nothing written; got "
                     f"{lines!r}, written: {os.path.exists(out)}")
    print(f"bad inputs: {', '.join(cases)} refused with one line each, nothing written")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--reference", required=True, help="the tessera_onnx_reference_logits executable")
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[], help="config override for training")
    p.add_argument("--np", type=int, default=1, help="ranks of the first training run")
    p.add_argument("--layout", action="append", default=[], help="layout override of the first training run")
    p.add_argument("--continue-np", type=int, default=2, help="ranks of the run that continues the import")
    p.add_argument("--continue-layout", action="append", default=[], help="its layout overrides")
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--mpirun-flags", default="--oversubscribe --allow-run-as-root --bind-to none")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--bad-inputs", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="tessera_hf_") as tmp:
        checkpoint = os.path.join(tmp, "ckpt")
        train(args, checkpoint, args.np, args.layout)
        exported = os.path.join(tmp, "hf")
        print(run([args.tessera, "export", checkpoint, "--hf", exported]).strip())
        model = load_hf(exported)
        print(f"transformers {transformers.__version__} loaded {type(model).__name__} with every weight")
        vocab = model.config.vocab_size
        rng = np.random.default_rng(20240520)
        tokens = {f"tokens.{k}": rng.integers(0, vocab, size=s, dtype=np.int32)
                  for k, s in enumerate([(1, 1), (1, 16), (3, 7), (4, 16)])}
        reference = tessera_logits(args, checkpoint, tokens, tmp)
        hf = hf_logits(model, tokens)
        compare("export --hf", hf, reference, args.rtol)

        # The other way: a directory written by transformers itself.
        saved = os.path.join(tmp, "saved")
        model.save_pretrained(saved, safe_serialization=True)
        imported = os.path.join(tmp, "imported")
        print(run([args.tessera, "import", "--hf", saved, "-o", imported]).strip())
        compare("import --hf", hf, tessera_logits(args, imported, tokens, tmp), args.rtol)
        out = train(args, os.path.join(tmp, "continued"), args.continue_np,
                    args.continue_layout + [f"init.from={imported}"])
        if f"init: weights from {imported}" not in out:
            sys.exit(f"the continued run did not start from the import:\n{out}")
        print(f"continued training from the import under np={args.continue_np} {' '.join(args.continue_layout)}")
        if args.bad_inputs:
            check_bad_inputs(args, saved, tmp)


if __name__ == "__main__":
    main()
