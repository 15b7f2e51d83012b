"""`tessera serve` with a Llama checkpoint and its SentencePiece tokenizer, through the official
`openai` client: greedy completions equal `tessera generate --greedy` and transformers' greedy
`generate` on the `export --hf` directory token for token; prompt scoring (echo + logprobs,
the every-row decode) equals transformers' log-softmax; streaming, token-id prompts, multibyte
text, n > 1 and /v1/models.

Usage: test_serve_llama.py --tessera BUILD/launcher/tessera --out DIR  (from the repository root)
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import time

import openai
import sentencepiece as spm
import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import Server  # noqa: E402

VOCAB = 400
NEW = 16
PROMPTS = ["ROMEO:", "Où est ça ? — KING"]  # the second needs byte pieces (é, ç, —)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def train(tessera, out):
    """A 200 kB slice of Tiny Shakespeare, a 400-piece BPE tokenizer on it, and a tiny GQA llama
    trained 30 steps on its tokens (enough that greedy text is mostly whole pieces)."""
    text = os.path.join(out, "shakespeare_200k.txt")
    with open("data/tinyshakespeare.txt", encoding="utf-8") as f:
        open(text, "w", encoding="utf-8").write(f.read()[:200000])
    tok, ckpt = os.path.join(out, "tok"), os.path.join(out, "llama")
    shutil.rmtree(ckpt, ignore_errors=True)
    run([tessera, "tokenize", text, "--out", tok, "--vocab-size", str(VOCAB)])
    sets = ["data.format=tokens", f"data.path={tok}/train.bin", f"model.vocab={VOCAB}",
            f"data.tokenizer={tok}/tokenizer.model", "model.seq_length=64", "train.max_steps=5",
            "train.threads=1", "model.init_std=0.2", f"checkpoint.dir={ckpt}", "checkpoint.interval=5"]
    run([tessera, "train", "configs/tests/llama_tiny.yaml"] + [a for s in sets for a in ("--set", s)])
    return ckpt, f"{tok}/tokenizer.model"


def token_text(sp, i):
    """The text a token adds mid-sequence, as the server streams it (JSON turns a lone byte of
    a multibyte character into U+FFFD)."""
    if sp.is_byte(i):
        return bytes([int(sp.id_to_piece(i)[3:5], 16)]).decode("utf-8", errors="replace")
    if sp.is_control(i) or sp.is_unused(i):
        return ""
    return sp.id_to_piece(i).replace("\u2581", " ")


def transformers_reference(tessera, ckpt, out, sp):
    """Greedy continuations and prompt log-probabilities from transformers' LlamaForCausalLM."""
    hf = os.path.join(out, "hf")
    shutil.rmtree(hf, ignore_errors=True)
    run([tessera, "export", ckpt, "--hf", hf])
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    ref = {}
    for prompt in PROMPTS:
        ids = sp.encode(prompt)
        with torch.no_grad():
            new = model.generate(torch.tensor([ids]), max_new_tokens=NEW, min_new_tokens=NEW,
                                 do_sample=False)[0, len(ids):].tolist()
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
        scored = [logp[j - 1, ids[j]].item() for j in range(1, len(ids))]
        ref[prompt] = (ids, new, scored)
    return ref


def check_models(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["llama"], models
    info = models.data[0].model_extra
    assert info["arch"] == "llama" and info["vocabulary"] == "sentencepiece" and info["vocab_size"] == VOCAB, info
    print(f"models: llama, sentencepiece vocabulary of {VOCAB}, {info['parameters']} parameters")


def check_greedy(client, tessera, ckpt, sp, ref):
    for prompt in PROMPTS:
        ids, new, _ = ref[prompt]
        r = client.completions.create(model="llama", prompt=prompt, max_tokens=NEW, temperature=0, logprobs=1)
        choice = r.choices[0]
        assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == NEW, r.usage
        want_tokens = [token_text(sp, i) for i in new]
        assert choice.logprobs.tokens == want_tokens, (prompt, choice.logprobs.tokens, want_tokens)
        # Mid-text, SentencePiece's decode is the concatenation of the tokens' texts.
        want_text = sp.decode(ids + new)
        assert prompt + choice.text == want_text, (prompt, choice.text, want_text)
        ours = run([tessera, "generate", ckpt, "--prompt", prompt, "--max-tokens", str(NEW), "--greedy"])[:-1]
        assert ours == want_text, (ours, want_text)
        by_ids = client.completions.create(model="llama", prompt=ids, max_tokens=NEW, temperature=0, echo=True)
        assert by_ids.choices[0].text == sp.decode(ids) + choice.text, by_ids.choices[0]
        streamed = client.completions.create(model="llama", prompt=prompt, max_tokens=NEW, temperature=0, stream=True)
        assert "".join(c.choices[0].text for c in streamed) == choice.text
        print(f"greedy {prompt!r}: {NEW} tokens equal transformers' and tessera generate's: {choice.text!r} "
              "(token-id prompt and stream alike)")


def check_scoring(client, ref):
    """echo + logprobs + max_tokens 0 scores every prompt token (the llama decode's every-row
    path) as transformers does."""
    worst = 0.0
    for prompt in PROMPTS:
        ids, _, scored = ref[prompt]
        r = client.completions.create(model="llama", prompt=prompt, max_tokens=0, echo=True, logprobs=2)
        lp = r.choices[0].logprobs
        assert r.choices[0].text == prompt and len(lp.tokens) == len(ids), r.choices[0]
        assert lp.token_logprobs[0] is None, lp
        for got, want in zip(lp.token_logprobs[1:], scored):
            worst = max(worst, abs(got - want) / max(1.0, abs(want)))
            assert math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-4), (prompt, lp.token_logprobs, scored)
    print(f"scoring: every prompt token's logprob equals transformers' log-softmax (worst {worst:.1e})")


def check_sampled(client):
    r = client.completions.create(model="llama", prompt=PROMPTS, max_tokens=10, n=2, seed=5, temperature=1.0)
    texts = [c.text for c in r.choices]
    for i, prompt in [(1, PROMPTS[0]), (3, PROMPTS[1])]:
        alone = client.completions.create(model="llama", prompt=prompt, max_tokens=10, seed=5 + i, temperature=1.0)
        assert alone.choices[0].text == texts[i], (i, alone.choices[0].text, texts[i])
    print("sampled: 2 prompts x 2 choices batched, each replays alone with seed + index")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tessera", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    ckpt, tokenizer = train(args.tessera, args.out)
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    ref = transformers_reference(args.tessera, ckpt, args.out, sp)
    server = Server(args.tessera, ckpt, "--max-batch", "4", name="llama")
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)
        check_models(client)
        check_greedy(client, args.tessera, ckpt, sp, ref)
        check_scoring(client, ref)
        check_sampled(client)
        client.close()
    finally:
        code = server.stop()
    assert code == 0, f"exit code {code}: {server.log()}"
    print(f"llama serving: all checks passed in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
