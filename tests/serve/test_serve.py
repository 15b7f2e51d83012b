"""`tessera serve` end to end over loopback HTTP, with the standard library only.

Trains a one-step checkpoint of a small GPT (context 512), starts the server on a free port,
and checks: health and the OpenAI model list; OpenAI-shaped completions (the same seed gives
the same text); concurrent requests give the same texts as sequential ones; a raw
server-sent-event stream; GET /metrics against what was sent; a streaming client that hangs
up stops its decoding. Then the bad-input table (tests/serve/bad_input.py), the 503 of a full
queue, and SIGTERM: a running request finishes, a queued one gets 503, and with
--shutdown-timeout 0 a running one is cut off.

Usage: test_serve.py --tessera BUILD/launcher/tessera --out DIR  (from the repository root)
"""
import argparse
import json
import os
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import CONTEXT, Server, train_checkpoint, wait_for  # noqa: E402
import bad_input  # noqa: E402


def check_info(server):
    status, _, health = server.json("GET", "/healthz")
    assert status == 200 and health["status"] == "ok", health
    status, _, models = server.json("GET", "/v1/models")
    assert status == 200 and models["object"] == "list", models
    model = models["data"][0]
    assert model["id"] == "tiny" and model["object"] == "model" and model["owned_by"] == "tessera", model
    assert model["created"] > 1.6e9, model
    assert model["context_length"] == CONTEXT and model["vocab_size"] == 65, model
    assert model["step"] == 1 and model["parameters"] > 1000000 and model["vocabulary"] == "chars", model
    print(f"info: {model['parameters']} parameters, step {model['step']}, context {model['context_length']}")


def check_completion_shape(server):
    body = server.complete(prompt="ROMEO:\n", max_tokens=40, temperature=1.0, seed=1234)
    assert body["object"] == "text_completion" and body["model"] == "tiny", body
    assert body["id"].startswith("cmpl-") and abs(body["created"] - time.time()) < 600, body
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "length" and choice["logprobs"] is None, choice
    assert len(choice["text"]) == 40, choice
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 40, "total_tokens": 47}, body["usage"]
    status, hdrs, again = server.json("POST", "/v1/completions", {"model": "tiny", "prompt": "ROMEO:\n",
                                                                    "max_tokens": 40, "temperature": 1.0, "seed": 1234})
    assert status == 200 and again["choices"][0]["text"] == choice["text"] and again["id"] != body["id"]
    assert hdrs["X-Request-Id"] == again["id"], hdrs
    other = server.complete(prompt="ROMEO:\n", max_tokens=40, temperature=1.0, seed=1235)
    assert other["choices"][0]["text"] != choice["text"], "a different seed gave the same 40 sampled characters"
    unseeded = server.complete(prompt="ROMEO:\n", max_tokens=40)
    replay = server.complete(prompt="ROMEO:\n", max_tokens=40, seed=unseeded["seed"])
    assert replay["choices"][0]["text"] == unseeded["choices"][0]["text"], "the echoed seed does not replay"
    greedy = [server.complete(prompt="JULIET:", max_tokens=30, temperature=0, seed=s)["choices"][0]["text"]
              for s in (1, 2)]
    assert greedy[0] == greedy[1], "temperature 0 depends on the seed"
    echo = server.complete(prompt="JULIET:", max_tokens=30, temperature=0, echo=True)["choices"][0]["text"]
    assert echo == "JULIET:" + greedy[0], echo
    print(f"completion: seed 1234 -> {choice['text']!r} twice; echo and greedy agree")
    return choice["text"]


def check_concurrency(server):
    requests = [{"prompt": p, "max_tokens": n, "temperature": t, "top_k": k, "top_p": q, "seed": 100 + i}
                for i, (p, n, t, k, q) in enumerate([
                    ("First Citizen:", 60, 1.0, 0, 1.0), ("A", 25, 0.8, 5, 1.0), ("What say you?", 80, 0.0, 0, 1.0),
                    ("KING", 40, 1.3, 0, 0.9), ("the", 70, 0.7, 10, 1.0), ("O, ", 33, 1.0, 2, 1.0),
                    ("Sir,\nmy lord", 50, 0.9, 0, 0.5), ("be", 90, 1.0, 0, 1.0)])]
    sequential = [server.complete(**r)["choices"][0]["text"] for r in requests]
    for _ in range(2):
        with ThreadPoolExecutor(len(requests)) as pool:
            concurrent = list(pool.map(lambda r: server.complete(**r)["choices"][0]["text"], requests))
        assert concurrent == sequential, [(s, c) for s, c in zip(sequential, concurrent) if s != c]
    print(f"concurrency: {len(requests)} requests from threads match the sequential texts")


def read_events(response):
    """The `data:` payloads of a server-sent-event stream, until [DONE] or the end."""
    events, buffer = [], b""
    while True:
        chunk = response.read1(65536) if hasattr(response, "read1") else response.read(1)
        if not chunk:
            return events
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            for line in event.decode().splitlines():
                if line.startswith("data: "):
                    events.append(line[len("data: "):])
            if events and events[-1] == "[DONE]":
                return events


def check_raw_stream(server, expected_text):
    import http.client
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    conn.request("POST", "/v1/completions", json.dumps({"model": "tiny", "prompt": "ROMEO:\n", "max_tokens": 40,
                                                         "temperature": 1.0, "seed": 1234, "stream": True,
                                                         "stream_options": {"include_usage": True}}),
                 {"Content-Type": "application/json"})
    res = conn.getresponse()
    assert res.status == 200 and res.getheader("Content-Type") == "text/event-stream", res.getheaders()
    events = read_events(res)
    conn.close()
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    usage = chunks.pop()
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 40, usage
    assert all(c["object"] == "text_completion" and c["id"] == chunks[0]["id"] for c in chunks), chunks[:2]
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert text == expected_text, (text, expected_text)
    reasons = [c["choices"][0]["finish_reason"] for c in chunks]
    assert reasons[-1] == "length" and all(r is None for r in reasons[:-1]), reasons
    print(f"stream: {len(chunks)} chunks, then usage and [DONE]; the same text as the whole answer")


def check_metrics(tessera, ckpt):
    """A fresh server: the counters and histograms after two known requests."""
    server = Server(tessera, ckpt, "--max-batch", "4")
    try:
        a = server.complete(prompt="abc", max_tokens=10, seed=1)
        b = server.complete(prompt=["ab", "c"], max_tokens=5, n=2, seed=1)
        server.request("POST", "/v1/completions", {"model": "tiny", "prompt": 5})
        label = 'model="tiny"'
        # An answer is counted after it is written: the client can be a moment ahead.
        good = f'tessera_http_requests_total{{{label},code="200",path="/v1/completions"}}'
        bad = f'tessera_http_requests_total{{{label},code="400",path="/v1/completions"}}'
        deadline = time.time() + 10
        while (bad not in (m := server.metrics()) or m.get(good) != 2) and time.time() < deadline:
            time.sleep(0.01)
        assert m[f'tessera_http_requests_total{{{label},code="200",path="/v1/completions"}}'] == 2, m
        assert m[f'tessera_http_requests_total{{{label},code="400",path="/v1/completions"}}'] == 1, m
        prompt = a["usage"]["prompt_tokens"] + b["usage"]["prompt_tokens"]
        completion = a["usage"]["completion_tokens"] + b["usage"]["completion_tokens"]
        assert (prompt, completion) == (3 + 3, 10 + 20), (prompt, completion)
        assert m[f"tessera_prompt_tokens_total{{{label}}}"] == prompt, m
        assert m[f"tessera_completion_tokens_total{{{label}}}"] == completion, m
        assert m[f'tessera_choices_finished_total{{{label},reason="length"}}'] == 5, m
        assert m[f"tessera_time_to_first_token_seconds_count{{{label}}}"] == 5, m
        assert m[f"tessera_inter_token_latency_seconds_count{{{label}}}"] == completion - 5, m
        assert m[f"tessera_queue_length{{{label}}}"] == 0 and m[f"tessera_batch_capacity{{{label}}}"] == 4, m
        steps = m[f"tessera_batch_steps_total{{{label}}}"]
        assert m[f"tessera_batch_occupancy_ratio_count{{{label}}}"] == steps and steps >= 10, m
        assert m[f'tessera_batch_occupancy_ratio_bucket{{{label},le="1"}}'] == steps, m
        line = f"request {a['id']}: 200, prompt 3 tokens, completion 10 tokens, 1 choice (length)"
        deadline = time.time() + 10  # the server's output is read by a thread
        while ": 400 'prompt' must be" not in server.log() and time.time() < deadline:
            time.sleep(0.01)
        log = server.log()
        assert line in log, log
        assert "request " in log and ": 400 'prompt' must be a string or a list of strings, not 5" in log, log
    finally:
        assert server.stop() == 0
    print(f"metrics: requests by status, {prompt} + {completion} tokens, 5 first tokens, {steps:.0f} steps; "
          "one log line per request")


def check_disconnect(tessera, ckpt):
    """A streaming client that hangs up: its sequence leaves the batch long before max_tokens."""
    server = Server(tessera, ckpt, "--max-batch", "1")
    try:
        sock = socket.create_connection((server.host, server.port))
        body = json.dumps({"model": "tiny", "prompt": "a", "max_tokens": CONTEXT - 1, "stream": True, "seed": 3})
        sock.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
        received = b""
        while b"data: " not in received:
            data = sock.recv(4096)
            assert data, f"the stream ended before its first event: {received!r}"
            received += data
        sock.close()
        wait_for(server, lambda h: h["active"] == 0 and h["completed"] == 1, "the cancelled sequence to leave")
        cancelled = 'tessera_choices_finished_total{model="tiny",reason="cancelled"}'
        deadline = time.time() + 10  # the handler counts it once it has seen the result
        while cancelled not in (m := server.metrics()) and time.time() < deadline:
            time.sleep(0.01)
        generated = m['tessera_completion_tokens_total{model="tiny"}']
        assert m[cancelled] == 1, m
        assert generated < CONTEXT - 1, f"{generated} tokens: decoding went on after the client left"
        server.complete(prompt="a", max_tokens=3)  # and it serves the next one
    finally:
        assert server.stop() == 0
    print(f"disconnect: the stream's sequence was cancelled after {generated:.0f} of {CONTEXT - 1} tokens")


def stream_all(server, request):
    """(status, text) of a streamed request, its text only when the stream ended with [DONE]."""
    import http.client
    conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
    conn.request("POST", "/v1/completions", json.dumps(request), {"Content-Type": "application/json"})
    res = conn.getresponse()
    events = read_events(res)
    conn.close()
    if res.status != 200 or not events or events[-1] != "[DONE]":
        return res.status, events
    return res.status, "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])


def check_queue_full_and_shutdown(tessera, ckpt):
    server = Server(tessera, ckpt, "--max-batch", "1", "--max-queue", "1")
    slow = {"model": "tiny", "prompt": "a", "max_tokens": CONTEXT - 1, "temperature": 1.0, "seed": 5}
    with ThreadPoolExecutor(8) as pool:
        running = pool.submit(server.json, "POST", "/v1/completions", slow)
        wait_for(server, lambda h: h["active"] == 1, "the slow request to start")
        burst = [pool.submit(server.json, "POST", "/v1/completions", slow) for _ in range(4)]
        answers = [f.result() for f in burst] + [running.result()]
    full = [(s, h, b) for s, h, b in answers if s == 503]
    assert full, "no 503 while one request ran and one waited with --max-queue 1"
    for status, hdrs, body in full:
        assert body["error"]["message"] == "the request queue is full (1 waiting); retry later", body
        assert body["error"]["type"] == "server_error" and hdrs.get("Retry-After") == "1", (body, hdrs)
    assert all(s in (200, 503) for s, _, _ in answers), [s for s, _, _ in answers]
    assert sum(s == 200 for s, _, _ in answers) >= 2, "the running and the queued request must both finish"
    print(f"queue full: {len(full)} of 4 burst requests got 503 while the batch and queue were full")

    # A burst request's answer can reach the client before the server releases its slot: start
    # the next phase from an idle server, or `active == 1` below may see the old request.
    wait_for(server, lambda h: h["active"] == 0 and h["queued"] == 0, "the burst to drain")
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(stream_all, server, {**slow, "stream": True})
        before = wait_for(server, lambda h: h["active"] == 1, "the running request")["completed"]
        queued = pool.submit(server.json, "POST", "/v1/completions", slow)
        # Normally the second request waits in the queue; should the first finish before it
        # arrives, it runs instead and SIGTERM must let it finish.
        wait_for(server, lambda h: h["queued"] == 1 or h["completed"] > before, "the queued request")
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=60)
        run_status, run_body = running.result()
        queued_status, _, queued_body = queued.result()
    server.reader.join(timeout=5)
    assert code == 0, f"exit code {code} after SIGTERM: {server.log()}"
    assert run_status == 200 and len(run_body) == CONTEXT - 1, (run_status, run_body)
    if queued_status == 503:
        assert queued_body["error"]["message"] == "the server shut down before the request started", queued_body
    else:
        assert queued_status == 200, (queued_status, queued_body)
    assert "tessera serve: stopping" in server.log() and "tessera serve: stopped after" in server.log()
    print(f"shutdown: the running stream finished with [DONE], the queued request answered {queued_status}, exit 0")


def check_shutdown_deadline(tessera, ckpt):
    server = Server(tessera, ckpt, "--shutdown-timeout", "0")
    with ThreadPoolExecutor(1) as pool:
        body = {"model": "tiny", "prompt": "a", "max_tokens": CONTEXT - 1, "seed": 5}
        running = pool.submit(server.json, "POST", "/v1/completions", body)
        wait_for(server, lambda h: h["active"] == 1, "the request to start")
        started = time.time()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=60)
        status, _, answer = running.result()
    server.reader.join(timeout=5)
    assert code == 0, server.log()
    assert status == 503, (status, answer)
    assert answer["error"]["message"] == "the server's shutdown deadline passed before the request finished", answer
    print(f"shutdown deadline 0: the running request was cut off with 503, exit 0 after {time.time() - started:.2f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tessera", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    ckpt = train_checkpoint(args.tessera, args.out)
    server = Server(args.tessera, ckpt, "--max-batch", "4", "--max-queue", "8", "--read-timeout", "2")
    try:
        check_info(server)
        text = check_completion_shape(server)
        check_concurrency(server)
        check_raw_stream(server, text)
        bad_input.check_all(server)
    finally:
        code = server.stop()
    assert code == 0, f"exit code {code} after SIGTERM"
    check_metrics(args.tessera, ckpt)
    check_disconnect(args.tessera, ckpt)
    bad_input.check_thousand_connections(args.tessera, ckpt)
    check_queue_full_and_shutdown(args.tessera, ckpt)
    check_shutdown_deadline(args.tessera, ckpt)
    print(f"serve: all checks passed in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
