#!/usr/bin/env python3
"""Load test of `tessera serve` over loopback: requests/s, p50/p99 latency and generated
tokens/s at 1, 4 and 16 concurrent clients, for continuous batching (--max-batch 16) and for
one sequence at a time (--max-batch 1).

Each client is a thread that sends one POST /v1/completions after another (a new connection
each, as a simple client does) until the level's time or request budget is spent, so a level
is bounded both ways. Latency is the client's, request sent to answer read; tokens/s counts
the completion tokens of all answered requests over the level's wall time. Requests have a
short prompt, a fixed max_tokens and a per-request seed, at temperature 0.8.

Without --checkpoint it trains a 2-step checkpoint of --config first (the weights do not
change the speed). Standard library only.

  python3 bench/bench_serve.py --tessera build/launcher/tessera --seconds 4 --max-requests 1000 [--threads 1]
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

PROMPTS = ["ROMEO:\n", "First Citizen:\n", "KING HENRY:\nWhat", "O, ", "JULIET:\nAy me", "Sir, "]


def train_checkpoint(args, out):
    ckpt = os.path.join(out, "ckpt")
    subprocess.run([args.tessera, "train", args.config, "--set", "train.max_steps=2", "--set", "train.eval_interval=0",
                    "--set", f"checkpoint.dir={ckpt}", "--set", "checkpoint.interval=2", "--set", "log.metrics=null"],
                   check=True, stdout=subprocess.DEVNULL)
    return ckpt


class Server:
    def __init__(self, args, ckpt, max_batch):
        self.proc = subprocess.Popen([args.tessera, "serve", ckpt, "--port", "0", "--max-batch", str(max_batch),
                                      "--max-queue", "64", "--threads", str(args.threads)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.proc.stdout:
            found = re.search(r"listening on http://([\d.]+):(\d+)", line)
            if found:
                self.host, self.port = found.group(1), int(found.group(2))
                break
        else:
            raise SystemExit("tessera serve exited before listening")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def get(self, path):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())

    def complete(self, body):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
            res = conn.getresponse()
            return res.status, json.loads(res.read())
        finally:
            conn.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


def run_level(server, clients, args):
    latencies, tokens, errors = [], [], []
    lock = threading.Lock()
    count = [0]
    start = time.perf_counter()
    deadline = start + args.seconds

    def client(c):
        while True:
            with lock:
                if count[0] >= args.max_requests or time.perf_counter() >= deadline:
                    return
                i = count[0]
                count[0] += 1
            body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": args.max_tokens, "temperature": 0.8,
                    "seed": i}
            t0 = time.perf_counter()
            status, answer = server.complete(body)
            elapsed = time.perf_counter() - t0
            with lock:
                if status == 200:
                    latencies.append(elapsed * 1000)
                    tokens.append(answer["usage"]["completion_tokens"])
                else:
                    errors.append(status)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "seconds": wall,
            "requests_per_s": len(latencies) / wall, "p50_ms": statistics.median(latencies), "p99_ms": pick(0.99),
            "tokens_per_s": sum(tokens) / wall}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tessera", default="build/launcher/tessera")
    parser.add_argument("--checkpoint", help="a checkpoint to serve; default: train 2 steps of --config")
    parser.add_argument("--config", default="configs/shakespeare_char.yaml")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-batch", type=int, default=16, help="the batched server's --max-batch")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=4.0, help="time budget of each level")
    parser.add_argument("--max-requests", type=int, default=1000, help="request budget of each level")
    parser.add_argument("--threads", type=int, default=0, help="the server's --threads; 0: OpenMP's default")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or train_checkpoint(args, tmp)
        results = []
        for mode, max_batch in (("batched", args.max_batch), ("one at a time", 1)):
            server = Server(args, ckpt, max_batch)
            try:
                info = server.get("/v1/models")["data"][0]
                for i in range(3):  # warm-up: first-touch pages, OpenMP threads
                    server.complete({"prompt": PROMPTS[0], "max_tokens": args.max_tokens, "seed": i})
                for clients in args.clients:
                    row = {"mode": mode, "max_batch": max_batch, **run_level(server, clients, args)}
                    results.append(row)
                    print(f"{mode:>13} (--max-batch {max_batch:>2}) | {clients:>2} clients | {row['requests']:>4} req "
                          f"in {row['seconds']:.1f} s | {row['requests_per_s']:7.1f} req/s | p50 {row['p50_ms']:7.1f} ms "
                          f"| p99 {row['p99_ms']:7.1f} ms | {row['tokens_per_s']:8.0f} tok/s | errors {row['errors']}",
                          flush=True)
            finally:
                code = server.stop()
            if code != 0:
                raise SystemExit(f"tessera serve exited with {code} after SIGTERM")
    print(f"model: {info['parameters']} parameters, context {info['context_length']}, vocab {info['vocab_size']}; "
          f"{args.max_tokens} tokens per request; server threads: {args.threads or 'OpenMP default'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": info, "max_tokens": args.max_tokens, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
