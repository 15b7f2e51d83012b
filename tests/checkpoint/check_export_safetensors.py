#!/usr/bin/env python3
"""Reads the file `tessera export --safetensors` writes (made by `mpi.checkpoint.export`) with
the Python safetensors package: names, dtypes, unpadded shapes, values (against
expected.safetensors, computed by the C++ side from the full model) and metadata.

Usage: check_export_safetensors.py EXPORT_DIR
Exit 77 (skipped) only when numpy or safetensors cannot be imported; scripts/install_deps.sh
pip-installs both, so CI runs it."""
import sys
from pathlib import Path

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
except ImportError as error:
    print(f"skipped: {error}")
    sys.exit(77)

out = Path(sys.argv[1])
got = load_file(out / "model.safetensors")
want = load_file(out / "expected.safetensors")
assert sorted(got) == sorted(want), f"names {sorted(got)} != {sorted(want)}"
for name, value in want.items():
    assert got[name].dtype == np.float32, f"{name}: dtype {got[name].dtype}"
    assert got[name].shape == value.shape, f"{name}: shape {got[name].shape} != {value.shape}"
    assert np.array_equal(got[name], value), f"{name}: values differ"
assert got["wte.weight"].shape == (65, 32) and got["lm_head.weight"].shape == (65, 32)
assert got["h.0.attn.c_attn.weight"].shape == (96, 32)
with safe_open(out / "model.safetensors", "np") as f:
    meta = f.metadata()
assert meta["format"] == "pt" and meta["step"] == "11", meta
print(f"safetensors: {len(got)} tensors match")
