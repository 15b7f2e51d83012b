#!/usr/bin/env python3
"""Loads the file `tessera export --safetensors` writes (made by `mpi.checkpoint.export`)
strictly into the reference nanoGPT-shaped PyTorch model (tests/reference/nanogpt_model.py):
every name and shape must be what that model expects, nothing missing, nothing extra; then
checks that the loaded model's parameters hold the exported values and that it runs.

Usage: check_pytorch_load.py EXPORT_DIR tests/reference
Exit 77 (skipped) only when torch (the independent reference) cannot be imported;
scripts/install_deps.sh pip-installs it, so CI runs it."""
import sys
from pathlib import Path

try:
    import torch
    from safetensors.torch import load_file
except ImportError as error:
    print(f"skipped: the PyTorch reference cannot be imported ({error})")
    sys.exit(77)

sys.path.insert(0, sys.argv[2])
from nanogpt_model import TinyGPT  # noqa: E402  (after the path is set)

exported = load_file(str(Path(sys.argv[1]) / "model.safetensors"))
model = TinyGPT(vocab=65, seq=16, hidden=32, heads=4, ffn=64, layers=2)
model.load_state_dict(exported, strict=True)
state = model.state_dict()
for name, value in exported.items():
    assert torch.equal(state[name], value), f"{name}: the loaded parameter differs from the file"
logits = model(torch.arange(16).reshape(1, 16) % 65)
assert logits.shape == (1, 16, 65) and torch.isfinite(logits).all(), logits.shape
print(f"PyTorch {torch.__version__}: {len(exported)} tensors loaded strictly into TinyGPT")
