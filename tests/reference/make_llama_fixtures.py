#!/usr/bin/env python3
"""Writes the Llama parity fixtures under tests/fixtures/ from Hugging Face transformers'
LlamaForCausalLM, built from a config with random weights (nothing is downloaded).

    python3 tests/reference/make_llama_fixtures.py

Same batch, optimizer and file layout as make_fixtures.py (see README.md), with the
parameters under transformers' names (`model.layers.0.self_attn.q_proj.weight`, ...): the C++
test finds them through Tessera's Hugging Face name mapping, so the mapping that
`tessera export --hf` uses is checked here too. Three models: multi-head attention with tied
embeddings, grouped-query attention (2 groups) untied, multi-query attention untied.
"""
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from make_fixtures import OPTIM, SEED, SEQ, common_metadata, load_batch, save

VARIANTS = {
    # name: (heads, key/value groups, tied)
    "llama_mha_tied": (4, 4, True),
    "llama_gqa_untied": (4, 2, False),
    "llama_mqa_untied": (4, 1, False),
}
LAYERS, HIDDEN, FFN, ROPE_THETA, RMS_EPS = 2, 32, 64, 10000.0, 1e-5


class Wrapped(torch.nn.Module):
    """logits only, so make_fixtures.reference_tensors can drive it like its own models."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens):
        return self.model(input_ids=tokens).logits

    def named_parameters(self, *args, **kwargs):
        # transformers' names without our wrapper's "model." prefix.
        for name, p in self.model.named_parameters(*args, **kwargs):
            yield name, p


def llama(vocab, heads, groups, tied):
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
        num_attention_heads=heads, num_key_value_heads=groups, max_position_embeddings=SEQ,
        rms_norm_eps=RMS_EPS, rope_theta=ROPE_THETA, tie_word_embeddings=tied,
        attention_bias=False, mlp_bias=False, attn_implementation="eager")
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).float()
    # Norm weights 1 + N(0, 0.1) instead of ones, so every gradient is generic.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(torch.randn_like(p) * 0.1)
    return Wrapped(model)


def adamw_groups(model, weight_decay):
    """Decay on matrices and embeddings (dim >= 2), not on the norms: the groups Tessera uses."""
    params = [p for _, p in model.named_parameters()]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def main():
    import make_fixtures
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    make_fixtures.adamw_groups = adamw_groups  # reference_tensors' optimizer groups
    tokens, targets, starts, vocab = load_batch()
    for name, (heads, groups, tied) in VARIANTS.items():
        model = llama(vocab, heads, groups, tied)
        meta = common_metadata(vocab, starts)
        meta.pop("gelu")  # no GELU in a Llama
        meta.update(arch="llama", num_layers=str(LAYERS), hidden_size=str(HIDDEN), heads=str(heads),
                    query_groups=str(groups), ffn=str(FFN), rope_theta=repr(ROPE_THETA),
                    rms_norm_eps=repr(RMS_EPS), tied=str(tied).lower(),
                    transformers=__import__("transformers").__version__)
        save(make_fixtures.reference_tensors(model, tokens, targets), f"{name}.safetensors", meta)
        print(f"tests/fixtures/{name}.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
