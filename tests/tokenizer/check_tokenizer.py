"""SentencePiece tokenizer checks: `tessera tokenize` trains a BPE model on Tiny Shakespeare and
writes llm.c token files whose ids are exactly what the Python sentencepiece package gives for
the same text with that model; Tessera's encode and decode agree with the package on 10,000+
strings (ASCII, multibyte UTF-8: accents, CJK, emoji, combining marks, control characters), and
decode(encode(s)) == s for each (byte fallback: nothing is lost). A tokenizer whose size is not
model.vocab is refused with one line. Exit 77 (skipped) only when sentencepiece cannot be imported."""
import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

try:
    import sentencepiece as spm
except ImportError as error:
    print(f"skipped: sentencepiece cannot be imported ({error}); scripts/install_deps.sh pip-installs it")
    sys.exit(77)


def run(cmd, expect=0):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != expect:
        sys.exit(f"exit {r.returncode} (expected {expect}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def read_tokens(path):
    with open(path, "rb") as f:
        header = struct.unpack("<256i", f.read(1024))
        assert header[0] == 20240520 and header[1] == 1, f"{path}: bad header {header[:3]}"
        data = f.read()
    assert len(data) == 2 * header[2], f"{path}: {len(data)} bytes for {header[2]} tokens"
    return list(struct.unpack(f"<{header[2]}H", data))


def random_strings(n, seed):
    """Strings drawn from several alphabets, lengths 0..40, so pieces, byte fallback and
    multi-byte characters all occur."""
    rng = random.Random(seed)
    alphabets = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.;:!?'\n",
        "0123456789 +-*/=",
        "éèêëàâäôöûüçñÉÀßøåæœ",
        "日本語の文章中文字符한국어",
        "😀😂🎉🚀👍🏽❤️🇫🇷",
        "\u0301\u0308\u200d\t\r\u00a0",
        "ΑΒΓΔαβγδЖжЯя",
    ]
    out = []
    for _ in range(n):
        k = rng.randint(1, 3)
        chars = "".join(rng.choice(alphabets) for _ in range(k))
        out.append("".join(rng.choice(chars) for _ in range(rng.randint(0, 40))))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--encoder", required=True, help="the tessera_encode_strings executable")
    p.add_argument("--text", default="data/tinyshakespeare.txt")
    p.add_argument("--vocab-size", type=int, default=512)
    p.add_argument("--strings", type=int, default=10000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tessera_tok_") as tmp:
        out = os.path.join(tmp, "tok")
        print(run([args.tessera, "tokenize", args.text, "--out", out, "--vocab-size", str(args.vocab_size)]).strip())
        model = os.path.join(out, "tokenizer.model")
        sp = spm.SentencePieceProcessor(model_file=model)
        assert sp.get_piece_size() == args.vocab_size, sp.get_piece_size()
        with open(args.text, encoding="utf-8") as f:
            text = f.read()
        ids = read_tokens(os.path.join(out, "train.bin")) + read_tokens(os.path.join(out, "val.bin"))
        if ids != sp.encode(text):
            sys.exit("train.bin + val.bin differ from sentencepiece's encoding of the text")
        if sp.decode(ids) != text:
            sys.exit("the token files do not decode back to the text")
        print(f"token files: {len(ids)} ids, identical to sentencepiece {spm.__version__}, decode to the text")

        strings = random_strings(args.strings, 20240520)
        with open(os.path.join(tmp, "in.json"), "w") as f:
            json.dump(strings, f)
        run([args.encoder, model, os.path.join(tmp, "in.json"), os.path.join(tmp, "out.json")])
        with open(os.path.join(tmp, "out.json")) as f:
            ours = json.load(f)
        multibyte = 0
        for s, o in zip(strings, ours, strict=True):
            multibyte += any(ord(c) > 127 for c in s)
            if o["ids"] != sp.encode(s):
                sys.exit(f"encode({s!r}): tessera {o['ids']} != sentencepiece {sp.encode(s)}")
            if o["decoded"] != s or sp.decode(o["ids"]) != s:
                sys.exit(f"decode(encode({s!r})) = {o['decoded']!r}")
        print(f"{len(strings)} strings ({multibyte} with multibyte UTF-8): same ids as sentencepiece, exact round trip")

        # data.tokenizer must match model.vocab.
        err = run([args.tessera, "train", "configs/tests/gpt_tiny.yaml", "--set", "data.format=tokens",
                   "--set", f"data.path={out}/train.bin", "--set", f"model.vocab={args.vocab_size + 1}",
                   "--set", f"data.tokenizer={model}", "--set", "train.max_steps=1"], expect=1).strip()
        if len(err.splitlines()) != 1 or "data.tokenizer" not in err or f"has {args.vocab_size} pieces" not in err:
            sys.exit(f"a tokenizer of the wrong size: expected one line naming data.tokenizer, got {err!r}")
        print(f"wrong size refused: {err}")
        check_generate_against_transformers(args, out, tmp)


def check_generate_against_transformers(args, tokens_dir, tmp):
    """A tiny llama trained on the token files with data.tokenizer: `tessera generate` at
    temperature 0 and transformers' greedy generate on the `export --hf` directory (model and
    tokenizer: the prompt encodes to the same ids) write the same tokens, hence text. Prompt + new tokens stay within the context of 16, so
    neither side needs a sliding window."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    ckpt, hf = os.path.join(tmp, "llama"), os.path.join(tmp, "hf")
    run([args.tessera, "train", "configs/tests/llama_tiny.yaml", "--set", "data.format=tokens",
         "--set", f"data.path={tokens_dir}/train.bin", "--set", f"data.val_path={tokens_dir}/val.bin",
         "--set", f"model.vocab={args.vocab_size}", "--set", f"data.tokenizer={tokens_dir}/tokenizer.model",
         "--set", "model.init_std=0.2", "--set", "train.max_steps=5", "--set", "train.threads=1",
         "--set", f"checkpoint.dir={ckpt}", "--set", "checkpoint.interval=5"])
    prompt, new = "ROMEO:", 10
    ours = subprocess.run([args.tessera, "generate", ckpt, "--prompt", prompt, "--max-tokens", str(new), "--greedy"],
                          capture_output=True, text=True, timeout=300)
    if ours.returncode != 0:
        sys.exit(f"tessera generate failed:\n{ours.stderr}")
    ours_text = ours.stdout[:-1]  # generate ends the text with a newline
    print(run([args.tessera, "export", ckpt, "--hf", hf]).strip())
    tokenizer = AutoTokenizer.from_pretrained(hf)
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=new, do_sample=False, min_new_tokens=new)
    # Decoded with SentencePiece, as Tessera decodes: transformers' byte-fallback decoder turns a
    # whole run of byte pieces into U+FFFD when the run is not valid UTF-8 (an undertrained model
    # writes such runs), where SentencePiece keeps the valid bytes.
    theirs_text = spm.SentencePieceProcessor(model_file=os.path.join(hf, "tokenizer.model")).decode(out[0].tolist())
    if theirs_text != ours_text:
        sys.exit(f"greedy text differs: tessera {ours_text!r}, transformers {theirs_text!r}")
    hf_decoded = tokenizer.decode(out[0], skip_special_tokens=False)
    if "\ufffd" not in theirs_text and hf_decoded != theirs_text:
        sys.exit(f"transformers' tokenizer decodes {hf_decoded!r}, SentencePiece {theirs_text!r}")
    print(f"greedy generate: tessera and transformers ({type(tokenizer).__name__}) both write {ours_text!r}")


if __name__ == "__main__":
    main()
