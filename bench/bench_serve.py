#!/usr/bin/env python3
"""Load test of `tessera serve` with streaming clients, against Hugging Face transformers.

Tessera: 1, 4, 16 and 64 concurrent clients, each a thread that sends one streaming POST
/v1/completions after another (OpenAI's protocol, `stream: true`) until the level's time or
request budget is spent. Per level: generated tokens/s over the level's wall time, time to
first token (request sent -> first text chunk) and inter-token latency (the gap before each
token as the client receives it; tokens that arrive in one chunk count 0 after the first)
at p50 and p99, and failed requests (any status but 200, or a stream without [DONE]).

The peer: the same weights in transformers' GPT2LMHeadModel (tessera export --safetensors,
then a name mapping: Tessera's [out, in] Linear weights become GPT-2's Conv1D [in, out]),
checked to give Tessera's greedy text, then `generate` with its KV cache (use_cache=True,
sampling at the same temperature) at batch 1 and at the batches the Tessera levels run, with
torch limited to the server's thread count. Its tokens/s is batch * new tokens / wall time;
its inter-token latency is the wall time / new tokens (every row gets a token per step).

The headline (Tessera at 16 clients vs transformers at batch 16) is measured --rounds times,
alternating the two, and reported as median and range: the machine is shared.

Without --checkpoint it trains a 2-step checkpoint of --config with --set overrides first
(the weights do not change the speed).

  python3 bench/bench_serve.py --tessera build/launcher/tessera --threads 1 --json bench/results/serve.json

Needs torch, transformers and safetensors (TESSERA_BENCH_DEPS=1 bash scripts/install_deps.sh).
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time

PROMPT = "ROMEO:\n"  # one prompt for every request: transformers' batches need no padding


def train_checkpoint(args, out):
    ckpt = os.path.join(out, "ckpt")
    cmd = [args.tessera, "train", args.config, "--set", "train.max_steps=2", "--set", "train.eval_interval=0",
           "--set", f"checkpoint.dir={ckpt}", "--set", "checkpoint.interval=2", "--set", "log.metrics=null"]
    for s in args.set:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return ckpt


class Server:
    def __init__(self, args, ckpt):
        self.proc = subprocess.Popen([args.tessera, "serve", ckpt, "--port", "0", "--name", "bench",
                                      "--max-batch", str(args.max_batch), "--max-queue", str(2 * args.max_batch),
                                      "--threads", str(args.threads)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.proc.stdout:
            found = re.search(r"listening on http://([\d.]+):(\d+)", line)
            if found:
                self.host, self.port = found.group(1), int(found.group(2))
                break
        else:
            raise SystemExit("tessera serve exited before listening")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def post(self, body):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        try:
            conn.request("POST", "/v1/completions", json.dumps({"model": "bench", **body}),
                         {"Content-Type": "application/json"})
            res = conn.getresponse()
            return res.status, json.loads(res.read())
        finally:
            conn.close()

    def stream(self, body):
        """(ok, ttft_s, [gap_s per token], tokens) of one streaming request."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        try:
            sent = time.perf_counter()
            conn.request("POST", "/v1/completions", json.dumps({"model": "bench", **body, "stream": True}),
                         {"Content-Type": "application/json"})
            res = conn.getresponse()
            if res.status != 200:
                res.read()
                return False, 0, [], 0
            ttft, last, gaps, tokens, buffer = None, sent, [], 0, b""
            while True:
                data = res.read1(65536)
                if not data:
                    return False, ttft or 0, gaps, tokens
                now = time.perf_counter()
                buffer += data
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    if not event.startswith(b"data: "):
                        continue
                    if event == b"data: [DONE]":
                        return True, ttft, gaps, tokens
                    n = len(json.loads(event[6:])["choices"][0]["text"])  # chars vocabulary: a token each
                    if n == 0:
                        continue
                    if ttft is None:
                        ttft = now - sent
                    else:
                        gaps.append(now - last)
                    gaps.extend([0.0] * (n - 1))
                    tokens += n
                    last = now
        finally:
            conn.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run_level(server, clients, args):
    ttfts, gaps, tokens, failures = [], [], [0], [0]
    lock = threading.Lock()
    count = [0]
    start = time.perf_counter()
    deadline = start + args.seconds

    def client():
        while True:
            with lock:
                if count[0] >= args.max_requests or time.perf_counter() >= deadline:
                    return
                i = count[0]
                count[0] += 1
            ok, ttft, request_gaps, n = server.stream({"prompt": PROMPT, "max_tokens": args.max_tokens,
                                                       "temperature": 0.8, "seed": i})
            with lock:
                if ok and n == args.max_tokens:
                    ttfts.append(ttft)
                    gaps.extend(request_gaps)
                    tokens[0] += n
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"clients": clients, "requests": len(ttfts), "failed": failures[0], "seconds": wall,
            "tokens_per_s": tokens[0] / wall, "ttft_p50_ms": 1000 * percentile(ttfts, 0.5),
            "ttft_p99_ms": 1000 * percentile(ttfts, 0.99), "itl_p50_ms": 1000 * percentile(gaps, 0.5),
            "itl_p99_ms": 1000 * percentile(gaps, 0.99)}


def load_hf(args, ckpt, tmp, info):
    """GPT2LMHeadModel with the checkpoint's weights, through Tessera's consolidated safetensors."""
    import torch
    from safetensors.torch import load_file
    from transformers import GPT2Config, GPT2LMHeadModel

    flat = os.path.join(tmp, "model.safetensors")
    subprocess.run([args.tessera, "export", ckpt, "--safetensors", flat], check=True, stdout=subprocess.DEVNULL)
    t = load_file(flat)
    layers, hidden = info["layers"], info["hidden_size"]
    config = GPT2Config(vocab_size=info["vocab_size"], n_positions=info["context_length"], n_embd=hidden,
                        n_layer=layers, n_head=info["attention_heads"],
                        n_inner=t["h.0.mlp.c_fc.weight"].shape[0], activation_function="gelu_new", bos_token_id=None, eos_token_id=None,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                        tie_word_embeddings=bool(torch.equal(t["lm_head.weight"], t["wte.weight"])))
    state = {"transformer.wte.weight": t["wte.weight"], "transformer.wpe.weight": t["wpe.weight"],
             "transformer.ln_f.weight": t["ln_f.weight"], "transformer.ln_f.bias": t["ln_f.bias"],
             "lm_head.weight": t["lm_head.weight"]}
    for i in range(layers):
        for name in ("ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "attn.c_attn.bias", "attn.c_proj.bias",
                     "mlp.c_fc.bias", "mlp.c_proj.bias"):
            state[f"transformer.h.{i}.{name}"] = t[f"h.{i}.{name}"]
        for name in ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"):
            state[f"transformer.h.{i}.{name}"] = t[f"h.{i}.{name}"].t().contiguous()  # Conv1D: [in, out]
    model = GPT2LMHeadModel(config).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith(".attn.bias") and not m.endswith(".attn.masked_bias")]
    assert not missing and not unexpected, (missing, unexpected)
    return model


def hf_generate(model, vocab_ids, batch, args):
    import torch
    ids = torch.tensor([vocab_ids] * batch)
    torch.manual_seed(0)
    with torch.inference_mode():
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_tokens,
                             min_new_tokens=args.max_tokens, do_sample=True, temperature=0.8, top_k=0,
                             use_cache=True, pad_token_id=0)
        wall = time.perf_counter() - start
    assert out.shape == (batch, len(vocab_ids) + args.max_tokens), out.shape
    return {"batch": batch, "seconds": wall, "tokens_per_s": batch * args.max_tokens / wall,
            "itl_ms": 1000 * wall / args.max_tokens}


def check_greedy_parity(model, server, vocab, args):
    import torch
    answer = server.post({"prompt": PROMPT, "max_tokens": 24, "temperature": 0})[1]["choices"][0]["text"]
    ids = torch.tensor([[vocab.index(c) for c in PROMPT]])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False,
                             pad_token_id=0)
    hf = "".join(vocab[i] for i in out[0, ids.shape[1]:].tolist())
    assert hf == answer, f"transformers' greedy text {hf!r} differs from Tessera's {answer!r}: the mapping is wrong"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tessera", default="build/launcher/tessera")
    parser.add_argument("--checkpoint", help="a checkpoint to serve; default: train 2 steps of --config")
    parser.add_argument("--config", default="configs/shakespeare_char.yaml")
    parser.add_argument("--set", action="append", default=[], help="config overrides for the trained checkpoint")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--hf-batches", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=6.0, help="time budget of each level")
    parser.add_argument("--max-requests", type=int, default=2000, help="request budget of each level")
    parser.add_argument("--rounds", type=int, default=3, help="alternating repeats of the 16-client headline")
    parser.add_argument("--threads", type=int, default=1, help="the server's --threads and torch's threads")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or train_checkpoint(args, tmp)
        server = Server(args, ckpt)
        try:
            conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
            conn.request("GET", "/v1/models")
            info = json.loads(conn.getresponse().read())["data"][0]
            conn.close()
            with open(os.path.join(info["checkpoint"], "manifest.json")) as f:
                vocab = "".join(chr(b) for b in json.load(f)["vocabulary"]["chars"])  # ASCII for Shakespeare
            model = load_hf(args, ckpt, tmp, info)
            check_greedy_parity(model, server, vocab, args)
            prompt_ids = [vocab.index(c) for c in PROMPT]
            for i in range(3):  # warm-up: first-touch pages
                server.stream({"prompt": PROMPT, "max_tokens": args.max_tokens, "seed": i})
            hf_generate(model, prompt_ids, 1, args)
            tessera = []
            for clients in args.clients:
                row = run_level(server, clients, args)
                tessera.append(row)
                print(f"tessera      | {clients:>2} clients | {row['requests']:>4} req in {row['seconds']:.1f} s | "
                      f"{row['tokens_per_s']:8.0f} tok/s | TTFT p50 {row['ttft_p50_ms']:7.1f} p99 "
                      f"{row['ttft_p99_ms']:7.1f} ms | ITL p50 {row['itl_p50_ms']:6.2f} p99 {row['itl_p99_ms']:6.2f} ms "
                      f"| failed {row['failed']}", flush=True)
            hf = []
            for batch in args.hf_batches:
                row = hf_generate(model, prompt_ids, batch, args)
                hf.append(row)
                print(f"transformers | batch {batch:>2}  | {row['tokens_per_s']:8.0f} tok/s | "
                      f"per-token step {row['itl_ms']:6.2f} ms", flush=True)
            rounds = []
            for r in range(args.rounds):
                t_row = run_level(server, 16, args)
                h_row = hf_generate(model, prompt_ids, 16, args)
                rounds.append({"tessera_16": t_row, "hf_16": h_row, "ratio": t_row["tokens_per_s"] / h_row["tokens_per_s"]})
                print(f"round {r + 1}: tessera 16 clients {t_row['tokens_per_s']:.0f} tok/s (ITL p99 "
                      f"{t_row['itl_p99_ms']:.2f} ms, failed {t_row['failed']}) vs transformers batch 16 "
                      f"{h_row['tokens_per_s']:.0f} tok/s: {rounds[-1]['ratio']:.2f}x", flush=True)
        finally:
            code = server.stop()
        if code != 0:
            raise SystemExit(f"tessera serve exited with {code} after SIGTERM")
    ratios = [r["ratio"] for r in rounds]
    load = os.getloadavg()
    print(f"model: {info['parameters']} parameters, {info['layers']} layers, hidden {info['hidden_size']}, context "
          f"{info['context_length']}, vocab {info['vocab_size']}; {args.max_tokens} new tokens per request; "
          f"{args.threads} thread(s) each; load average {load[0]:.1f}")
    print(f"16 clients vs transformers batch 16: median {statistics.median(ratios):.2f}x "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} alternating rounds)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": info, "max_tokens": args.max_tokens, "threads": args.threads, "load_average": load,
                       "tessera": tessera, "transformers": hf, "rounds": rounds}, f, indent=1)


if __name__ == "__main__":
    main()
