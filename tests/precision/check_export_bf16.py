#!/usr/bin/env python3
"""`tessera export --safetensors OUT --dtype bf16` writes every tensor as BF16, rounded to nearest
even from the fp32 masters that `--dtype fp32` writes. Read independently of Tessera: the
safetensors header is parsed by hand (numpy has no bfloat16), and the expected bf16 bits are
computed from the fp32 file with numpy integer arithmetic."""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    return {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def bf16_bits(f32):
    bits = f32.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # nearest, ties to even (no NaNs here)
    return rounded.astype(np.uint16)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tessera", required=True)
    p.add_argument("--config", required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = [args.tessera, "train", args.config, "--set", "train.max_steps=3", "--set", f"checkpoint.dir={tmp}/ckpt",
               "--set", "checkpoint.interval=3", "--set", "train.precision=bf16", "--set", "train.threads=1"]
        subprocess.run(run, check=True, capture_output=True)
        for dtype in ("fp32", "bf16"):
            subprocess.run([args.tessera, "export", f"{tmp}/ckpt", "--safetensors", f"{tmp}/{dtype}.safetensors",
                            "--dtype", dtype], check=True, capture_output=True)
        f32 = read_safetensors(f"{tmp}/fp32.safetensors")
        b16 = read_safetensors(f"{tmp}/bf16.safetensors")
        bad = subprocess.run([args.tessera, "export", f"{tmp}/ckpt", "--onnx", f"{tmp}/m.onnx", "--dtype", "bf16"],
                             capture_output=True, text=True)
    assert sorted(f32) == sorted(b16), "the two exports hold different tensors"
    for name, (dtype, shape, raw) in f32.items():
        d16, s16, raw16 = b16[name]
        assert dtype == "F32" and d16 == "BF16", f"{name}: dtypes {dtype} / {d16}"
        assert shape == s16, f"{name}: shapes {shape} / {s16}"
        want = bf16_bits(np.frombuffer(raw, dtype=np.float32))
        got = np.frombuffer(raw16, dtype=np.uint16)
        assert np.array_equal(got, want), f"{name}: bf16 values are not the rounded fp32 masters"
    assert bad.returncode == 2 and "--dtype applies to --safetensors only" in bad.stderr, bad.stderr
    print(f"OK: {len(f32)} tensors exported as BF16, each the round-to-nearest-even of the fp32 master")


if __name__ == "__main__":
    main()
