"""The bad-input table of `tessera serve`: every kind of bad request gets its status and a
one-line OpenAI error object, and the server answers a good request right after each one.
Also: a client that sends half a request and stalls (408 after --read-timeout), and 1,000
connections opened at once (the queue bound answers 503 with Retry-After, nothing is dropped).
Used by test_serve.py."""
import asyncio
import json
import resource
import socket
import time

from serve_util import CONTEXT, Server

J = {"Content-Type": "application/json"}


def body(**fields):
    return json.dumps({"model": "tiny", **fields})


# (what, method, path, body, headers, status, param, substring of the message)
CASES = [
    ("not JSON", "POST", "/v1/completions", '{"model": "tiny", "prompt": "a"', J, 400, None, "invalid JSON: "),
    ("binary garbage", "POST", "/v1/completions", "\x00\x01\x02", J, 400, None, "invalid JSON: "),
    ("not an object", "POST", "/v1/completions", "[1, 2]", J, 400, None, "must be a JSON object, not array"),
    ("no model", "POST", "/v1/completions", '{"prompt": "a"}', J, 400, "model", "missing field 'model'"),
    ("wrong model", "POST", "/v1/completions", '{"model": "gpt-4", "prompt": "a"}', J, 404, "model",
     "the model 'gpt-4' does not exist; this server has 'tiny'"),
    ("no prompt", "POST", "/v1/completions", body(max_tokens=3), J, 400, "prompt", "missing field 'prompt'"),
    ("prompt a number", "POST", "/v1/completions", body(prompt=3), J, 400, "prompt",
     "'prompt' must be a string or a list of strings, not 3"),
    ("prompt list with a number", "POST", "/v1/completions", body(prompt=["a", 3]), J, 400, "prompt",
     "'prompt[1]' must be a string, not 3"),
    ("empty prompt", "POST", "/v1/completions", body(prompt=""), J, 400, "prompt", "'prompt' must not be empty"),
    ("over-long prompt", "POST", "/v1/completions", body(prompt="a" * CONTEXT), J, 400, "prompt",
     f"'prompt' has {CONTEXT} characters; this server accepts at most {CONTEXT - 1}"),
    ("character outside the vocabulary", "POST", "/v1/completions", body(prompt="caf\u00e9"), J, 400, "prompt",
     "is not in the vocabulary"),
    ("max_tokens a string", "POST", "/v1/completions", body(prompt="a", max_tokens="5"), J, 400, "max_tokens",
     "'max_tokens' must be an integer, not string"),
    ("max_tokens a float", "POST", "/v1/completions", body(prompt="a", max_tokens=2.5), J, 400, "max_tokens",
     "'max_tokens' must be an integer, not 2.5"),
    ("max_tokens zero", "POST", "/v1/completions", body(prompt="a", max_tokens=0), J, 400, "max_tokens",
     "'max_tokens' must be at least 1 (0 only with echo), not 0"),
    ("max_tokens past the context", "POST", "/v1/completions", body(prompt="ab", max_tokens=CONTEXT - 1), J, 400,
     "max_tokens", f"'max_tokens' {CONTEXT - 1} is too large"),
    ("temperature a string", "POST", "/v1/completions", body(prompt="a", temperature="hot"), J, 400, "temperature",
     "'temperature' must be a number, not string"),
    ("temperature negative", "POST", "/v1/completions", body(prompt="a", temperature=-1), J, 400, "temperature",
     "'temperature' must be in [0, 100]"),
    ("top_p zero", "POST", "/v1/completions", body(prompt="a", top_p=0), J, 400, "top_p", "'top_p' must be in (0, 1]"),
    ("top_k over the vocabulary", "POST", "/v1/completions", body(prompt="a", top_k=66), J, 400, "top_k",
     "'top_k' must be in [0, 65]"),
    ("n too large", "POST", "/v1/completions", body(prompt="a", n=1000), J, 400, "n", "'n' must be in [1, 8]"),
    ("stop a number", "POST", "/v1/completions", body(prompt="a", stop=5), J, 400, "stop",
     "'stop' must be a string or a list of strings, not 5"),
    ("seed negative", "POST", "/v1/completions", body(prompt="a", seed=-2), J, 400, "seed", "'seed' must be"),
    ("logprobs too many", "POST", "/v1/completions", body(prompt="a", logprobs=50), J, 400, "logprobs",
     "'logprobs' must be in [0, 20]"),
    ("stream not a bool", "POST", "/v1/completions", body(prompt="a", stream="yes"), J, 400, "stream",
     "'stream' must be true or false"),
    ("unknown field", "POST", "/v1/completions", body(prompt="a", max_token=5), J, 400, "max_token",
     "unknown field 'max_token'"),
    ("wrong content type", "POST", "/v1/completions", body(prompt="a"), {"Content-Type": "text/plain"}, 415, None,
     "Content-Type must be application/json, not 'text/plain'"),
    ("body too large", "POST", "/v1/completions", "x" * (2 << 20), J, 413, None, "larger than 1048576 bytes"),
    ("unknown path", "GET", "/v1/chat", None, {}, 404, None, "no such path '/v1/chat'"),
    ("GET on completions", "GET", "/v1/completions", None, {}, 405, None, "method GET is not allowed"),
    ("POST on metrics", "POST", "/metrics", "{}", J, 405, None, "method POST is not allowed on /metrics"),
]


def good_request(server, after):
    status, _, answer = server.json("POST", "/v1/completions", {"model": "tiny", "prompt": "a", "max_tokens": 4})
    assert status == 200 and len(answer["choices"][0]["text"]) == 4, f"after {after}: {status} {answer}"


def check_table(server):
    for what, method, path, data, headers, want_status, want_param, want_message in CASES:
        status, hdrs, raw = server.request(method, path, data, headers)
        assert status == want_status, f"{what}: status {status}, wanted {want_status}: {raw[:200]!r}"
        assert hdrs.get("Content-Type") == "application/json", f"{what}: {hdrs}"
        answer = json.loads(raw)
        assert list(answer) == ["error"], f"{what}: {answer}"
        error = answer["error"]
        assert set(error) == {"message", "type", "param", "code"}, f"{what}: {error}"
        assert want_message in error["message"] and "\n" not in error["message"], f"{what}: {error}"
        assert error["param"] == want_param, f"{what}: param {error['param']!r}, wanted {want_param!r}"
        assert error["type"] == "invalid_request_error", f"{what}: {error}"
        if want_status == 405:
            assert hdrs.get("Allow") in ("GET", "POST"), f"{what}: Allow {hdrs.get('Allow')}"
        good_request(server, what)
    print(f"bad input: {len(CASES)} kinds answered with their status and an OpenAI error, each followed by a "
          "good request")


def check_stall(server, read_timeout_s):
    """Half a request, then silence: 408 (a stalled body) or 400 (stalled headers) after the read timeout."""
    for what, partial, want in [
            ("a body", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 100\r\n\r\n{\"model\": \"ti", 408),
            ("headers", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Ty", 400)]:
        sock = socket.create_connection((server.host, server.port), timeout=read_timeout_s + 30)
        started = time.time()
        sock.sendall(partial)
        response = b""
        while b"}}" not in response:
            data = sock.recv(65536)
            if not data:
                break
            response += data
        sock.close()
        waited = time.time() - started
        head, _, payload = response.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {want} ".encode()), f"half {what}: {response[:300]!r}"
        message = json.loads(payload)["error"]["message"]
        assert f"{read_timeout_s} s" in message, message
        assert read_timeout_s - 0.5 <= waited <= read_timeout_s + 10, f"half {what}: answered after {waited:.1f} s"
        good_request(server, f"half {what}")
        print(f"stall: half {what} -> {want} after {waited:.1f} s: {message}")


def check_all(server):
    check_table(server)
    check_stall(server, 2)


async def one_connection(host, port, payload):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(payload)
    await writer.drain()
    response = await reader.read()  # the server closes after answering: Connection: close below
    writer.close()
    head, _, data = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    retry_after = b"\r\nretry-after: 1" in head.lower()
    return status, retry_after, data


async def thousand(host, port, count):
    data = json.dumps({"model": "tiny", "prompt": "a", "max_tokens": 64, "seed": 1}).encode()
    payload = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    return await asyncio.gather(*[one_connection(host, port, payload) for _ in range(count)], return_exceptions=True)


def check_thousand_connections(tessera, ckpt):
    # 1000 sockets on each side: raise the soft limit on open files (often 1024) for this
    # process and the server it starts.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096 if hard == resource.RLIM_INFINITY else min(4096, hard), hard))
    server = Server(tessera, ckpt, "--max-batch", "2", "--max-queue", "4")
    try:
        started = time.time()
        results = asyncio.run(thousand(server.host, server.port, 1000))
        elapsed = time.time() - started
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"{len(errors)} connections failed, e.g. {errors[0]!r}"
        statuses = [s for s, _, _ in results]
        assert set(statuses) <= {200, 503}, sorted(set(statuses))
        busy = [(retry, json.loads(d)) for s, retry, d in results if s == 503]
        assert busy and statuses.count(200) >= 6, (statuses.count(200), len(busy))
        for retry, answer in busy:
            assert retry, "a 503 without Retry-After"
            assert answer["error"]["message"].startswith("the request queue is full"), answer
        good_request(server, "1000 connections")
    finally:
        assert server.stop() == 0
    print(f"1000 connections at once: {statuses.count(200)} answered 200, {len(busy)} got 503 with Retry-After, "
          f"none dropped ({elapsed:.1f} s); then a good request")
