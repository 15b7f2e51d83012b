"""Shared by the `tessera serve` tests: a one-step checkpoint and a server process on a free
loopback port, with plain-HTTP helpers (standard library only)."""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

# Wide and long enough that a request of CONTEXT - 1 tokens takes a few hundred ms on one
# thread (the queue tests need slow requests); one training step still takes well under 1 s.
CONTEXT = 512


def train_checkpoint(tessera, out, name="ckpt"):
    ckpt = os.path.join(out, name)
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
    """A `tessera serve` process (or `mpirun ... tessera serve`) on a free loopback port, read
    from its first lines; its output is collected in `lines`."""

    def __init__(self, tessera, ckpt, *flags, launcher=(), name="tiny"):
        # One OpenMP thread: the decode steps are small, and on a loaded 2-core machine
        # spinning OpenMP workers only slow them down.
        self.model = name
        self.proc = subprocess.Popen([*launcher, tessera, "serve", ckpt, "--port", "0", "--threads", "1",
                                      "--name", name, *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        deadline = time.time() + 120
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

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}/v1"

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
        assert hdrs.get("Content-Type") == "application/json", (path, hdrs, data[:200])
        return status, hdrs, json.loads(data)

    def complete(self, **fields):
        status, _, body = self.json("POST", "/v1/completions", {"model": self.model, **fields})
        assert status == 200, (status, body)
        return body

    def metrics(self):
        """GET /metrics as {"name{labels}": value} (the Prometheus text format's samples)."""
        status, hdrs, data = self.request("GET", "/metrics")
        assert status == 200 and hdrs["Content-Type"].startswith("text/plain; version=0.0.4"), (status, hdrs)
        samples = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def log(self):
        return "".join(self.lines)

    def stop(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def wait_for(server, predicate, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, _, health = server.json("GET", "/healthz")
        if predicate(health):
            return health
        time.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")
