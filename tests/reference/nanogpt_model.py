"""The PyTorch models that Tessera's GPT and MLP match: nanoGPT's GPT (pre-LayerNorm,
learned positions, GELU(tanh) MLP, untied bias-free lm_head, no dropout) and a per-token MLP.

Imported by make_fixtures.py (parity fixtures) and bench/bench_train_vs_pytorch.py (speed).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden, heads, sdpa=False):
        super().__init__()
        self.heads = heads
        self.sdpa = sdpa
        self.c_attn = nn.Linear(hidden, 3 * hidden)  # q | k | v along the output dim
        self.c_proj = nn.Linear(hidden, hidden)

    def forward(self, x):
        B, T, C = x.shape
        head_dim = C // self.heads
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, head_dim).transpose(1, 2) for t in (q, k, v))
        if self.sdpa:
            # nanoGPT's fast path: PyTorch's fused attention (the benchmark's baseline).
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            # Written out so each step maps onto a kernel of the C++ runtime (the fixtures).
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim))
            causal = torch.ones(T, T, dtype=torch.bool).tril()
            att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
            y = att @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class FeedForward(nn.Module):
    def __init__(self, hidden, ffn):
        super().__init__()
        self.c_fc = nn.Linear(hidden, ffn)
        self.c_proj = nn.Linear(ffn, hidden)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, hidden, heads, ffn, sdpa=False):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden, eps=1e-5)
        self.attn = CausalSelfAttention(hidden, heads, sdpa)
        self.ln_2 = nn.LayerNorm(hidden, eps=1e-5)
        self.mlp = FeedForward(hidden, ffn)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    """nanoGPT's GPT without dropout, with an untied, bias-free lm_head."""

    def __init__(self, vocab, seq, hidden, heads, ffn, layers, sdpa=False):
        super().__init__()
        self.wte = nn.Embedding(vocab, hidden)
        self.wpe = nn.Embedding(seq, hidden)
        self.h = nn.ModuleList(Block(hidden, heads, ffn, sdpa) for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden, eps=1e-5)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, tokens):
        x = self.wte(tokens) + self.wpe(torch.arange(tokens.shape[1]))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def init_gpt(model, layers):
    """nanoGPT init, then non-zero biases and non-unit LayerNorm so their grads are generic."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("c_proj.weight"):
                p.normal_(0.0, 0.02 / math.sqrt(2 * layers))
            elif p.dim() == 2:
                p.normal_(0.0, 0.02)
            elif ".ln_" in name or name.startswith("ln_f."):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.02 * torch.randn_like(p))


class TokenMLP(nn.Module):
    """Embedding, then GELU(tanh) after every hidden Linear, then a vocabulary head."""

    def __init__(self, vocab, input_size, hidden, layers):
        super().__init__()
        self.embedding = nn.Embedding(vocab, input_size)
        self.fc = nn.ModuleList(
            nn.Linear(input_size if i == 0 else hidden, hidden) for i in range(layers)
        )
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for fc in self.fc:
            x = F.gelu(fc(x), approximate="tanh")
        return self.head(x)


def adamw_groups(model, weight_decay):
    """nanoGPT's groups: decay matrices and embeddings, not biases or LayerNorm params."""
    named = list(model.named_parameters())
    return [
        {"params": [p for _, p in named if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for _, p in named if p.dim() < 2], "weight_decay": 0.0},
    ]
