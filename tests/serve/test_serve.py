"""`tessera serve` end to end over loopback HTTP, with the standard library only.

Trains a one-step checkpoint of a small GPT (context 512), starts the server on a free port,
and checks: health and model info; the same seed gives the same text; concurrent requests
from threads give the same texts as sequential ones; 20+ kinds of bad requests get the right
status and a one-line JSON error, and leave a keep-alive connection usable; a full queue
(--max-batch 1 --max-queue 1, slow requests) answers 503; SIGTERM finishes the running
request, answers the queued one 503 and exits 0.

Usage: test_serve.py --tessera BUILD/launcher/tessera --out DIR  (from the repository root)
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Wide and long enough that a request of CONTEXT - 1 tokens takes a few hundred ms on one
# thread (the queue test needs slow requests); one training step still takes well under 1 s.
CONTEXT = 512


def train_checkpoint(tessera, out):
    ckpt = os.path.join(out, "ckpt")
    shutil.rmtree(ckpt, ignore_errors=True)
    sets = ["train.max_steps=1", "train.micro_batch_size=1", "train.global_batch_size=1",
            f"model.seq_length={CONTEXT}", "model.hidden_size=256", "model.ffn_hidden_size=1024",
            f"checkpoint.dir={ckpt}", "checkpoint.interval=1"]
    cmd = [tessera, "train", "configs/tests/gpt_tiny.yaml"]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=120)
    return ckpt


class Server:
    """A `tessera serve` process on a free loopback port (read from its first lines)."""

    def __init__(self, tessera, ckpt, *flags):
        # One OpenMP thread: the decode steps are small, and on a loaded 2-core machine
        # spinning OpenMP workers only slow them down.
        self.proc = subprocess.Popen([tessera, "serve", ckpt, "--port", "0", "--threads", "1", *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"server exited before listening: {''.join(self.lines)}")
            self.lines.append(line)
            found = re.search(r"listening on http://([\d.]+):(\d+)", line)
            if found:
                self.host, self.port = found.group(1), int(found.group(2))
                break
        else:
            raise AssertionError("server did not print its address")
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=headers or {})
            res = conn.getresponse()
            data = res.read()
            return res.status, dict(res.getheaders()), data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None):
        status, hdrs, data = self.request(method, path, body, headers)
        assert hdrs.get("Content-Type") == "application/json", (path, hdrs)
        return status, hdrs, json.loads(data)

    def complete(self, **fields):
        status, _, body = self.json("POST", "/v1/completions", fields)
        assert status == 200, (status, body)
        return body

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.reader.join(timeout=5)
        return code


def check_info(server):
    status, _, health = server.json("GET", "/healthz")
    assert status == 200 and health["status"] == "ok", health
    status, _, models = server.json("GET", "/v1/models")
    assert status == 200, models
    model = models["data"][0]
    assert model["context_length"] == CONTEXT and model["vocab_size"] == 65, model
    assert model["step"] == 1 and model["parameters"] > 1000000 and model["vocabulary"] == "chars", model
    print(f"info: {model['parameters']} parameters, step {model['step']}, context {model['context_length']}")


def check_determinism(server):
    request = {"prompt": "ROMEO:\n", "max_tokens": 40, "temperature": 1.0, "seed": 1234}
    first, second = server.complete(**request), server.complete(**request)
    assert first["text"] == second["text"], (first["text"], second["text"])
    assert len(first["text"]) == 40 and first["seed"] == 1234, first
    assert first["usage"] == {"prompt_tokens": 7, "completion_tokens": 40, "total_tokens": 47}, first["usage"]
    assert all(first["timing"][k] >= 0 for k in ("queue_ms", "prefill_ms", "decode_ms")), first["timing"]
    other = server.complete(**{**request, "seed": 1235})
    assert other["text"] != first["text"], "a different seed gave the same 40 sampled characters"
    unseeded = server.complete(prompt="ROMEO:\n", max_tokens=40)
    replay = server.complete(prompt="ROMEO:\n", max_tokens=40, seed=unseeded["seed"])
    assert replay["text"] == unseeded["text"], "the echoed seed does not replay an unseeded request"
    greedy = [server.complete(prompt="JULIET:", max_tokens=30, temperature=0, seed=s)["text"] for s in (1, 2)]
    assert greedy[0] == greedy[1], "temperature 0 depends on the seed"
    print(f"determinism: seed 1234 -> {first['text']!r} twice")


def check_concurrency(server):
    requests = [{"prompt": p, "max_tokens": n, "temperature": t, "top_k": k, "seed": 100 + i}
                for i, (p, n, t, k) in enumerate([("First Citizen:", 60, 1.0, 0), ("A", 25, 0.8, 5),
                                                   ("What say you?", 80, 0.0, 0), ("KING", 40, 1.3, 0),
                                                   ("the", 70, 0.7, 10), ("O, ", 33, 1.0, 2),
                                                   ("Sir,\nmy lord", 50, 0.9, 0), ("be", 90, 1.0, 0)])]
    sequential = [server.complete(**r)["text"] for r in requests]
    for attempt in range(2):
        with ThreadPoolExecutor(len(requests)) as pool:
            concurrent = list(pool.map(lambda r: server.complete(**r)["text"], requests))
        assert concurrent == sequential, [(s, c) for s, c in zip(sequential, concurrent) if s != c]
    _, _, health = server.json("GET", "/healthz")
    print(f"concurrency: {len(requests)} requests from threads match the sequential texts "
          f"({health['completed']} answered so far)")


def check_bad_requests(server):
    j = {"Content-Type": "application/json"}
    long_prompt = "a" * CONTEXT
    cases = [
        # (what, method, path, body, headers, status, substring of the error)
        ("invalid JSON", "POST", "/v1/completions", '{"prompt": "a"', j, 400, "invalid JSON: "),
        ("non-object", "POST", "/v1/completions", "[1, 2]", j, 400, "must be a JSON object, not array"),
        ("missing prompt", "POST", "/v1/completions", '{"max_tokens": 3}', j, 400, "missing field 'prompt'"),
        ("prompt not a string", "POST", "/v1/completions", '{"prompt": 3}', j, 400, "'prompt' must be a string"),
        ("empty prompt", "POST", "/v1/completions", '{"prompt": ""}', j, 400, "'prompt' must not be empty"),
        ("over-long prompt", "POST", "/v1/completions", json.dumps({"prompt": long_prompt}), j, 400,
         f"'prompt' has {CONTEXT} characters; this server accepts at most {CONTEXT - 1}"),
        ("character not in the vocabulary", "POST", "/v1/completions", '{"prompt": "caf\\u00e9"}', j, 400,
         "is not in the vocabulary"),
        ("max_tokens a string", "POST", "/v1/completions", '{"prompt": "a", "max_tokens": "5"}', j, 400,
         "'max_tokens' must be an integer, not string"),
        ("max_tokens a float", "POST", "/v1/completions", '{"prompt": "a", "max_tokens": 2.5}', j, 400,
         "'max_tokens' must be an integer, not 2.5"),
        ("max_tokens zero", "POST", "/v1/completions", '{"prompt": "a", "max_tokens": 0}', j, 400,
         "'max_tokens' must be at least 1, not 0"),
        ("max_tokens negative", "POST", "/v1/completions", '{"prompt": "a", "max_tokens": -4}', j, 400,
         "'max_tokens' must be at least 1, not -4"),
        ("max_tokens too large", "POST", "/v1/completions", json.dumps({"prompt": "ab", "max_tokens": CONTEXT - 1}),
         j, 400, f"'max_tokens' {CONTEXT - 1} is too large"),
        ("temperature a string", "POST", "/v1/completions", '{"prompt": "a", "temperature": "hot"}', j, 400,
         "'temperature' must be a number, not string"),
        ("temperature negative", "POST", "/v1/completions", '{"prompt": "a", "temperature": -1}', j, 400,
         "'temperature' must be in [0, 100]"),
        ("top_k negative", "POST", "/v1/completions", '{"prompt": "a", "top_k": -1}', j, 400,
         "'top_k' must be in [0, 65]"),
        ("top_k over the vocabulary", "POST", "/v1/completions", '{"prompt": "a", "top_k": 66}', j, 400,
         "'top_k' must be in [0, 65]"),
        ("seed negative", "POST", "/v1/completions", '{"prompt": "a", "seed": -2}', j, 400, "'seed' must be"),
        ("unknown field", "POST", "/v1/completions", '{"prompt": "a", "max_token": 5}', j, 400,
         "unknown field 'max_token'"),
        ("wrong content type", "POST", "/v1/completions", '{"prompt": "a"}', {"Content-Type": "text/plain"}, 415,
         "Content-Type must be application/json, not 'text/plain'"),
        ("no content type", "POST", "/v1/completions", '{"prompt": "a"}', {}, 415,
         "Content-Type must be application/json"),
        ("body too large", "POST", "/v1/completions", "x" * (2 << 20), j, 413, "larger than 1048576 bytes"),
        ("unknown path", "GET", "/v1/chat", None, {}, 404, "no such path '/v1/chat'"),
        ("GET on completions", "GET", "/v1/completions", None, {}, 405, "method GET is not allowed"),
        ("POST on healthz", "POST", "/healthz", "{}", j, 405, "method POST is not allowed on /healthz"),
        ("DELETE on models", "DELETE", "/v1/models", None, {}, 405, "method DELETE is not allowed"),
    ]
    for what, method, path, body, headers, want_status, want_error in cases:
        status, hdrs, data = server.request(method, path, body, headers)
        assert status == want_status, f"{what}: status {status}, wanted {want_status}: {data[:200]!r}"
        assert hdrs.get("Content-Type") == "application/json", f"{what}: {hdrs}"
        body_json = json.loads(data)
        assert list(body_json) == ["error"], f"{what}: {body_json}"
        error = body_json["error"]
        assert want_error in error and "\n" not in error, f"{what}: error {error!r} lacks {want_error!r}"
        if want_status == 405:
            assert hdrs.get("Allow") in ("GET", "POST"), f"{what}: Allow {hdrs.get('Allow')}"
    status, _, health = server.json("GET", "/healthz")
    assert status == 200 and health["status"] == "ok", "the server is not healthy after the bad requests"
    print(f"bad requests: {len(cases)} kinds answered with the right status and a one-line JSON error")


def check_keep_alive(server):
    """Refused requests must consume their bodies: on one keep-alive connection, the request
    after a 404 or 405 with a large body is answered normally."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        for method, path, want in [("POST", "/nowhere", 404), ("PUT", "/v1/completions", 405),
                                   ("POST", "/healthz", 405), ("GET", "/healthz", 200)]:
            conn.request(method, path, body="x" * 200000 if method != "GET" else None,
                         headers={"Content-Type": "application/json"})
            res = conn.getresponse()
            res.read()
            assert res.status == want, f"{method} {path} on a kept-alive connection: {res.status}, wanted {want}"
    finally:
        conn.close()
    print("keep-alive: refused requests with 200 kB bodies leave the connection usable")


def wait_for(server, predicate, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, _, health = server.json("GET", "/healthz")
        if predicate(health):
            return health
        time.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")


def check_queue_full_and_shutdown(tessera, ckpt):
    server = Server(tessera, ckpt, "--max-batch", "1", "--max-queue", "1")
    slow = {"prompt": "a", "max_tokens": CONTEXT - 1, "temperature": 1.0, "seed": 5}
    with ThreadPoolExecutor(8) as pool:
        running = pool.submit(server.json, "POST", "/v1/completions", slow)
        wait_for(server, lambda h: h["active"] == 1, "the slow request to start")
        burst = [pool.submit(server.json, "POST", "/v1/completions", slow) for _ in range(4)]
        answers = [f.result() for f in burst] + [running.result()]
    full = [(s, h, b) for s, h, b in answers if s == 503]
    assert full, "no 503 while one request ran and one waited with --max-queue 1"
    for status, hdrs, body in full:
        assert body == {"error": "the request queue is full (1 waiting); retry later"}, body
        assert hdrs.get("Retry-After") == "1", hdrs
    assert all(s in (200, 503) for s, _, _ in answers), [s for s, _, _ in answers]
    assert sum(s == 200 for s, _, _ in answers) >= 2, "the running and the queued request must both finish"
    print(f"queue full: {len(full)} of 4 burst requests got 503 while the batch and queue were full")

    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(server.json, "POST", "/v1/completions", slow)
        before = wait_for(server, lambda h: h["active"] == 1, "the running request")["completed"]
        queued = pool.submit(server.json, "POST", "/v1/completions", slow)
        # Normally the second request waits in the queue; should the first finish before it
        # arrives, it runs instead and SIGTERM must let it finish.
        wait_for(server, lambda h: h["queued"] == 1 or h["completed"] > before, "the queued request")
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=60)
        run_status, _, run_body = running.result()
        queued_status, _, queued_body = queued.result()
    server.reader.join(timeout=5)
    assert code == 0, f"exit code {code} after SIGTERM: {''.join(server.lines)}"
    assert run_status == 200 and len(run_body["text"]) == CONTEXT - 1, (run_status, run_body)
    if queued_status == 503:
        assert queued_body == {"error": "the server shut down before the request started"}, queued_body
    else:
        assert queued_status == 200, (queued_status, queued_body)
    log = "".join(server.lines)
    assert "tessera serve: stopping" in log and "tessera serve: stopped after" in log, log
    print(f"shutdown: running request finished (200), queued one answered {queued_status}, exit code 0")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tessera", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    ckpt = train_checkpoint(args.tessera, args.out)
    server = Server(args.tessera, ckpt, "--max-batch", "4", "--max-queue", "8")
    try:
        check_info(server)
        check_determinism(server)
        check_concurrency(server)
        check_bad_requests(server)
        check_keep_alive(server)
    finally:
        code = server.stop()
    assert code == 0, f"exit code {code} after SIGTERM"
    check_queue_full_and_shutdown(args.tessera, ckpt)
    print(f"serve: all checks passed in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
