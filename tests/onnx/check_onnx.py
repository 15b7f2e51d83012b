"""ONNX parity: trains a tiny model (one rank, or a parallel layout under mpirun), exports its
checkpoint with `tessera export --onnx` (weights inline, and again as external data), runs the
exported model with onnxruntime on random token batches of several sizes and sequence lengths,
and compares with Tessera's own logits (the training Model at tp 1, tessera_onnx_reference_logits).
Passes when max|onnx - tessera| / max|tessera| <= --rtol for every batch and both exports.
Exit 77 (skipped) only when onnxruntime cannot be imported."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import onnxruntime as ort
except ImportError as error:
    print(f"skipped: onnxruntime cannot be imported ({error}); scripts/install_deps.sh pip-installs it")
    sys.exit(77)
import numpy as np
from safetensors.numpy import load_file, save_file


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def train(args, checkpoint_dir):
    cmd = [args.tessera, "train", args.config, "--set", f"train.max_steps={args.steps}",
           "--set", f"checkpoint.dir={checkpoint_dir}", "--set", f"checkpoint.interval={args.steps}",
           "--set", "train.threads=1", "--set", "log.interval=100"]
    for s in args.set:
        cmd += ["--set", s]
    if args.np > 1:
        cmd = [args.mpirun, "-np", str(args.np), *args.mpirun_flags.split(), *cmd]
    run(cmd)


def check_export(args, session_path, tokens, reference):
    session = ort.InferenceSession(session_path, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "tokens" and inp.type == "tensor(int64)" and inp.shape == ["batch", "seq"], inp
    assert out.name == "logits" and out.type == "tensor(float)" and out.shape[:2] == ["batch", "seq"], out
    worst = 0.0
    for key, t in tokens.items():
        want = reference["logits." + key.split(".")[1]]
        (got,) = session.run(["logits"], {"tokens": t.astype(np.int64)})
        assert got.dtype == np.float32 and got.shape == want.shape, f"{key}: {got.dtype} {got.shape} != {want.shape}"
        rel = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
        worst = max(worst, rel)
        print(f"  batch {t.shape[0]:2d} x seq {t.shape[1]:3d}: max relative error {rel:.2e}")
        if not rel <= args.rtol:
            sys.exit(f"{session_path}: {key} differs from Tessera's logits: {rel:.3e} > {args.rtol:g}")
    return worst


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--reference", required=True, help="the tessera_onnx_reference_logits executable")
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[], help="config override for training")
    p.add_argument("--np", type=int, default=1)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--mpirun-flags", default="--oversubscribe --allow-run-as-root --bind-to none")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--shapes", default="1x1,1x16,3x7,4x16", help="BATCHxSEQ,... of the token batches")
    p.add_argument("--rtol", type=float, default=2e-6)
    p.add_argument("--external-threshold", type=int, default=4096,
                   help="--external-data-threshold of the second export (0: no second export)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="tessera_onnx_") as tmp:
        checkpoint = os.path.join(tmp, "ckpt")
        train(args, checkpoint)
        model = os.path.join(tmp, "model.onnx")
        print(run([args.tessera, "export", checkpoint, "--onnx", model]).strip())
        assert not os.path.exists(model + ".data"), "weights of a small model must stay inside it"

        meta = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
        vocab = json.loads(meta["tessera.vocabulary"])["size"]
        rng = np.random.default_rng(20240520)
        tokens = {}
        for k, shape in enumerate(args.shapes.split(",")):
            batch, seq = (int(x) for x in shape.split("x"))
            tokens[f"tokens.{k}"] = rng.integers(0, vocab, size=(batch, seq), dtype=np.int32)
        save_file(tokens, os.path.join(tmp, "tokens.safetensors"))
        run([args.reference, checkpoint, os.path.join(tmp, "tokens.safetensors"), os.path.join(tmp, "ref.safetensors")])
        reference = load_file(os.path.join(tmp, "ref.safetensors"))

        print(f"onnxruntime {ort.__version__}, weights inside {model}:")
        worst = check_export(args, model, tokens, reference)
        if args.external_threshold > 0:
            external = os.path.join(tmp, "external.onnx")
            print(run([args.tessera, "export", checkpoint, "--onnx", external,
                       "--external-data-threshold", str(args.external_threshold)]).strip())
            assert os.path.getsize(external + ".data") > os.path.getsize(external), "weights must be external"
            print(f"weights in {external}.data:")
            worst = max(worst, check_export(args, external, tokens, reference))
        print(f"max relative error {worst:.2e} (tolerance {args.rtol:g})")


if __name__ == "__main__":
    main()
