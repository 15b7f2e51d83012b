"""Tensor-parallel `tessera serve` under `mpirun -np 2 ... --tp 2` (about 30 s on 2 shared cores).

Checks: the same texts as one process for the same seeds (alone, concurrent, streamed, n > 1,
top_k / top_p); the server stays up across idle heartbeats; SIGTERM to rank 0 ends the whole
job with exit 0; a rank killed mid-request ends the job (mpirun's error line, non-zero exit)
instead of hanging; a rank that hangs (SIGSTOP) makes rank 0 time out after --comm-timeout,
answer the running request 500 and exit with its error line.

Usage: test_serve_tp.py --tessera BUILD/launcher/tessera --out DIR [--mpirun mpirun]
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import Server, train_checkpoint, wait_for  # noqa: E402

REQUESTS = [
    {"prompt": "ROMEO:", "max_tokens": 24, "temperature": 1.0, "seed": 5},
    {"prompt": "KING", "max_tokens": 16, "temperature": 0.7, "top_k": 5, "seed": 9},
    {"prompt": ["First", "O, "], "max_tokens": 12, "n": 2, "top_p": 0.8, "seed": 21},
    {"prompt": "What say you?", "max_tokens": 20, "temperature": 0.0},
]


def texts(server, request):
    return [c["text"] for c in server.complete(**request)["choices"]]


def streamed_text(server, request):
    status, _, raw = server.request("POST", "/v1/completions", {"model": "tiny", **request, "stream": True})
    assert status == 200, raw[:200]
    events = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events[-2:]
    return "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])


def rank_pids(expected):
    """{world rank: pid} of the `tessera serve` ranks, found by their Open MPI environment."""
    deadline = time.time() + 30
    while time.time() < deadline:
        pids = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"serve" not in f.read():
                        continue
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            for entry in env:
                if entry.startswith(b"OMPI_COMM_WORLD_RANK="):
                    pids[int(entry.split(b"=")[1])] = int(pid)
        if len(pids) == expected:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"found ranks {pids}, expected {expected}")


class TpServer(Server):
    def __init__(self, args, ckpt, *flags):
        launcher = (args.mpirun, "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "-np", "2")
        super().__init__(args.tessera, ckpt, "--tp", "2", *flags, launcher=launcher)
        self.ranks = rank_pids(2)

    def cleanup(self):
        for pid in self.ranks.values():
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.kill()


def check_same_texts(args, ckpt):
    one = Server(args.tessera, ckpt)
    try:
        expected = [texts(one, r) for r in REQUESTS]
        expected_stream = streamed_text(one, REQUESTS[0])
    finally:
        assert one.stop() == 0
    tp = TpServer(args, ckpt)
    try:
        _, _, models = tp.json("GET", "/v1/models")
        assert models["data"][0]["tensor_parallel"] == 2, models
        assert [texts(tp, r) for r in REQUESTS] == expected, "tp 2 gives other texts than one process"
        with ThreadPoolExecutor(len(REQUESTS)) as pool:
            assert list(pool.map(lambda r: texts(tp, r), REQUESTS)) == expected, "concurrent tp 2 texts differ"
        assert streamed_text(tp, REQUESTS[0]) == expected_stream == expected[0][0]
        time.sleep(2.5)  # idle: rank 0's heartbeats keep the workers' waits from timing out
        assert texts(tp, REQUESTS[0]) == expected[0]
        os.kill(tp.ranks[0], signal.SIGTERM)
        code = tp.proc.wait(timeout=60)
        assert code == 0, f"SIGTERM to rank 0: exit {code}: {tp.log()}"
    finally:
        tp.cleanup()
    print(f"same texts: {sum(len(t) for t in expected)} completions equal to one process's, alone, concurrent "
          "and streamed; SIGTERM to rank 0 exits 0")


def run_request_in_background(server, results):
    def run():
        try:
            results.append(server.request("POST", "/v1/completions",
                                          {"model": "tiny", "prompt": "a", "max_tokens": 400}, timeout=120)[0])
        except Exception as e:  # noqa: BLE001 -- the connection may be reset when the job dies
            results.append(repr(e))
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def check_dead_rank(args, ckpt):
    tp = TpServer(args, ckpt)
    try:
        results = []
        thread = run_request_in_background(tp, results)
        wait_for(tp, lambda h: h["active"] == 1, "the request to start")
        started = time.time()
        os.kill(tp.ranks[1], signal.SIGKILL)
        code = tp.proc.wait(timeout=90)
        thread.join(timeout=30)
        tp.reader.join(timeout=5)
    finally:
        tp.cleanup()
    assert code != 0, tp.log()
    assert "process rank 1" in tp.log() and "signal 9" in tp.log(), tp.log()
    print(f"dead rank: the job ended {time.time() - started:.1f} s after rank 1 was killed (exit {code}); "
          f"the running request got {results}")


def check_hung_rank(args, ckpt):
    tp = TpServer(args, ckpt, "--comm-timeout", "3")
    try:
        results = []
        thread = run_request_in_background(tp, results)
        wait_for(tp, lambda h: h["active"] == 1, "the request to start")
        started = time.time()
        os.kill(tp.ranks[1], signal.SIGSTOP)
        code = tp.proc.wait(timeout=90)
        thread.join(timeout=30)
        tp.reader.join(timeout=5)
    finally:
        tp.cleanup()
    log = tp.log()
    assert code != 0, log
    assert "tessera: error on rank 0: the decode loop stopped: timeout after 3.0 s" in log, log
    assert results == [500], results
    print(f"hung rank: rank 0 timed out, answered 500 and exited {code} after {time.time() - started:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tessera", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mpirun", default="mpirun")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    ckpt = train_checkpoint(args.tessera, args.out)
    check_same_texts(args, ckpt)
    check_dead_rank(args, ckpt)
    check_hung_rank(args, ckpt)
    print(f"serve tp: all checks passed in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
