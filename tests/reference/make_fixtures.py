#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures that the C++ tests match, under tests/fixtures/.

    python3 tests/reference/make_fixtures.py

Re-runnable and deterministic (fp32, CPU, one thread, fixed seeds). See README.md next to
this script for what each file and tensor is.
"""
import json
import pathlib
import struct

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from nanogpt_model import TinyGPT, TokenMLP, adamw_groups, init_gpt

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
TEXT = ROOT / "data" / "tinyshakespeare.txt"

SEED = 1337
BATCH, SEQ = 4, 16
# AdamW as nanoGPT configures it; the 10 steps reuse one batch so the curve only depends
# on the model, the optimizer and the clipping.
OPTIM = dict(lr=1e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1, grad_clip=1.0, steps=10)


def load_batch():
    """Tokens and next-token targets [BATCH, SEQ] from tiny Shakespeare, chars vocabulary."""
    text = TEXT.read_text(encoding="utf-8")
    chars = sorted(set(text))
    assert len(chars) == 65, f"expected 65 distinct characters, got {len(chars)}"
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.int64)
    gen = torch.Generator().manual_seed(SEED)
    starts = torch.randint(len(data) - SEQ - 1, (BATCH,), generator=gen)
    tokens = torch.stack([data[s : s + SEQ] for s in starts])
    targets = torch.stack([data[s + 1 : s + 1 + SEQ] for s in starts])
    return tokens, targets, starts.tolist(), len(chars)


def loss_of(model, tokens, targets):
    logits = model(tokens)
    return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def reference_tensors(model, tokens, targets):
    """Initial params, one forward/backward, then the 10-step AdamW trajectory."""
    named = list(model.named_parameters())
    out = {f"params.{n}": p.detach().clone() for n, p in named}
    out["batch.tokens"] = tokens.to(torch.int32)
    out["batch.targets"] = targets.to(torch.int32)
    logits, loss = loss_of(model, tokens, targets)
    loss.backward()
    out["logits"] = logits.detach().clone()
    out["loss"] = loss.detach().reshape(1)
    out.update({f"grads.{n}": p.grad.clone() for n, p in named})  # before any clipping

    groups = adamw_groups(model, OPTIM["weight_decay"])  # nanoGPT's decay / no-decay split
    opt = torch.optim.AdamW(groups, lr=OPTIM["lr"], betas=OPTIM["betas"], eps=OPTIM["eps"])
    losses, norms = [], []
    for _ in range(OPTIM["steps"]):
        opt.zero_grad(set_to_none=True)
        _, loss = loss_of(model, tokens, targets)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), OPTIM["grad_clip"])
        losses.append(loss.item())
        norms.append(norm.item())
        opt.step()
    out["losses_10steps"] = torch.tensor(losses, dtype=torch.float32)
    out["grad_norms_10steps"] = torch.tensor(norms, dtype=torch.float32)
    return {k: v.contiguous() for k, v in out.items()}


def common_metadata(vocab, starts):
    return {
        "seq_length": str(SEQ),
        "vocab_size": str(vocab),
        "batch": str(BATCH),
        "lr": repr(OPTIM["lr"]),
        "betas": json.dumps(list(OPTIM["betas"])),
        "eps": repr(OPTIM["eps"]),
        "weight_decay": repr(OPTIM["weight_decay"]),
        "grad_clip": repr(OPTIM["grad_clip"]),
        "steps": str(OPTIM["steps"]),
        "gelu": "tanh",
        "seed": str(SEED),
        "data": "data/tinyshakespeare.txt",
        "vocab": "chars",
        "batch_starts": json.dumps(starts),
    }


def save(tensors, name, metadata):
    """save_file, then the metadata keys sorted: the library writes them in hash order,
    which would change the committed bytes on every run."""
    path = FIXTURES / name
    save_file(tensors, path, metadata=metadata)
    blob = bytearray(path.read_bytes())
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + length])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= length, "a canonical header is never longer than the library's"
    blob[8 : 8 + length] = text.ljust(length, b" ")
    path.write_bytes(bytes(blob))


def write_gpt(tokens, targets, starts, vocab):
    layers, hidden, heads, ffn = 2, 32, 4, 64
    torch.manual_seed(SEED)
    model = TinyGPT(vocab, SEQ, hidden, heads, ffn, layers)
    init_gpt(model, layers)
    meta = common_metadata(vocab, starts)
    meta.update(arch="gpt", num_layers=str(layers), hidden_size=str(hidden), heads=str(heads),
                ffn=str(ffn), layernorm_eps=repr(1e-5))
    save(reference_tensors(model, tokens, targets), "gpt_reference.safetensors", meta)


def write_mlp(tokens, targets, starts, vocab):
    layers, input_size, hidden = 3, 32, 32
    torch.manual_seed(SEED)
    model = TokenMLP(vocab, input_size, hidden, layers)  # PyTorch's default init
    meta = common_metadata(vocab, starts)
    meta.update(arch="mlp", num_layers=str(layers), hidden_size=str(hidden),
                input_size=str(input_size))
    save(reference_tensors(model, tokens, targets), "mlp_reference.safetensors", meta)


def write_format_sample():
    """One tensor of every dtype Tessera reads, plus 0-d and empty ones, laid out by the
    Python library (which orders the data section by alignment, then name)."""
    tensors = {
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.0,
        "bf16": torch.tensor([1.0, -2.0, 0.5], dtype=torch.bfloat16),
        "f16": torch.tensor([[1.0, -2.0], [0.5, 65504.0]], dtype=torch.float16),
        "i32": torch.tensor([[-1, 2], [3, 2**31 - 1]], dtype=torch.int32),
        "u16": torch.tensor([0, 1, 65535], dtype=torch.uint16),
        "scalar": torch.tensor(3.25, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
    }
    save(tensors, "python_sample.safetensors",
         {"source": "tests/reference/make_fixtures.py", "format": "pt"})


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # fixed reduction order, so reruns write identical bytes
    FIXTURES.mkdir(parents=True, exist_ok=True)
    tokens, targets, starts, vocab = load_batch()
    write_gpt(tokens, targets, starts, vocab)
    write_mlp(tokens, targets, starts, vocab)
    write_format_sample()
    for path in sorted(FIXTURES.glob("*.safetensors")):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
