#!/usr/bin/env python3
"""Runs the CLI bad-input table (cases.toml): each case damages one input of the real `tessera`
binary, runs one command, and checks the exit code, the one error line, and that not a single
file of the case's directory (its checkpoint, its output paths) was changed, added or removed.
Every failing case is reported by name. Standard library only (Python >= 3.11 for tomllib).

Usage: run_cases.py --tessera BIN --mpirun MPIRUN --repo SOURCE_DIR [--only SUBSTRING] [--keep]"""
import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
MPI_FLAGS = ["--oversubscribe", "--allow-run-as-root"]
TOKEN_MAGIC, TOKEN_VERSION, TOKEN_HEADER = 20240520, 1, 256 * 4
FIXTURE_STEP = 2  # the fixture checkpoint is saved after this many steps


def expand(value, names):
    """Replaces {name} placeholders (only the known names, so regex braces survive)."""
    if isinstance(value, str):
        for key, text in names.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, list):
        return [expand(v, names) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, names) for k, v in value.items()}
    return value


def token_file(spec):
    """An llm.c token file from a spec: tokens (list) or n (count of token 1), and optional
    header overrides magic/version/count and trailing bytes."""
    tokens = spec.get("tokens", [1] * spec.get("n", 0))
    header = [0] * 256
    header[0] = spec.get("magic", TOKEN_MAGIC)
    header[1] = spec.get("version", TOKEN_VERSION)
    header[2] = spec.get("count", len(tokens))
    body = struct.pack(f"<{len(tokens)}H", *tokens)
    return struct.pack("<256i", *header) + body + b"\0" * spec.get("trailing", 0)


def json_path(root, path):
    """(parent, key) of a path such as tensors/0/pieces/1/ranges (tensor names hold dots)."""
    parts = [int(p) if p.isdigit() else p for p in path.split("/")]
    node = root
    for p in parts[:-1]:
        node = node[p]
    return node, parts[-1]


def edit_json(obj, op):
    if "delete" in op:
        parent, key = json_path(obj, op["delete"])
        del parent[key]
    else:
        parent, key = json_path(obj, op["set"])
        parent[key] = op["value"]
    return obj


def read_safetensors_header(data):
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def manifest_record_size(case_dir, shard):
    """Records a rewritten shard's new size in its step's manifest, as a writer would."""
    manifest = shard.parent / "manifest.json"
    m = json.loads(manifest.read_text())
    for f in m["files"]:
        if f["name"] == shard.name:
            f["bytes"] = shard.stat().st_size
    manifest.write_text(json.dumps(m, indent=1, sort_keys=True))


def apply(op, case_dir):
    path = case_dir / op["file"]
    kind = op["op"]
    if kind == "write":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(op["text"])
    elif kind == "tokens":
        path.write_bytes(token_file(op))
    elif kind == "remove":
        path.unlink()
    elif kind == "truncate":
        os.truncate(path, path.stat().st_size - op["by"])
    elif kind == "fill":  # every byte replaced, size kept
        path.write_bytes(bytes([op["byte"]]) * path.stat().st_size)
    elif kind == "u64":  # a little-endian uint64 written at an offset (the header length)
        with open(path, "r+b") as f:
            f.seek(op.get("offset", 0))
            f.write(struct.pack("<Q", op["value"]))
    elif kind == "bytes":  # text written over the file at an offset
        with open(path, "r+b") as f:
            f.seek(op["offset"])
            f.write(op["text"].encode())
    elif kind == "json":
        path.write_text(json.dumps(edit_json(json.loads(path.read_text()), op), indent=1, sort_keys=True))
    elif kind == "header":  # edit a safetensors header, keep the data section
        header, rest = read_safetensors_header(path.read_bytes())
        if "rename" in op:
            header[op["to"]] = header.pop(op["rename"])
        else:
            header = edit_json(header, op)
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        path.write_bytes(struct.pack("<Q", len(text)) + text + rest)
        if op.get("record_size", True):
            manifest_record_size(case_dir, path)
    else:
        raise ValueError(f"unknown op {kind!r}")


def snapshot(root):
    """Every directory and every file's sha256 under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def diff(before, after):
    changes = [f"removed {k}" for k in before if k not in after]
    changes += [f"added {k}" for k in after if k not in before]
    changes += [f"changed {k}" for k in before if k in after and before[k] != after[k]]
    return changes


def make_fixture(args, root):
    """A tp 2 checkpoint of gpt_tiny after FIXTURE_STEP steps, a base config that resumes it,
    and small valid data files."""
    repo = Path(args.repo)
    base = (repo / "configs/tests/gpt_tiny.yaml").read_text()
    (root / "base.yaml").write_text(base.replace("path: data/tinyshakespeare.txt",
                                                 f"path: {repo / 'data/tinyshakespeare.txt'}"))
    (root / "tokens.bin").write_bytes(token_file({"tokens": [i % 50 for i in range(400)]}))
    cmd = [args.mpirun, *MPI_FLAGS, "-np", "2", args.tessera, "train", str(root / "base.yaml"),
           "--set", "parallel.tensor_model_parallel_size=2", "--set", f"train.max_steps={FIXTURE_STEP}",
           "--set", f"checkpoint.dir={root / 'ckpt'}", "--set", f"checkpoint.interval={FIXTURE_STEP}",
           "--set", "train.threads=1", "--set", "log.interval=100"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or not (root / f"ckpt/step_{FIXTURE_STEP}/manifest.json").exists():
        sys.exit(f"FAILED: could not train the fixture checkpoint:\n{' '.join(cmd)}\n{r.stdout}\n{r.stderr}")


def run_case(case, args, root):
    case_dir = root / "cases" / case["name"]
    case_dir.mkdir(parents=True)
    names = {"case": str(case_dir), "base": str(root / "base.yaml"), "tokens": str(root / "tokens.bin"),
             "repo": args.repo, "ckpt": str(case_dir / "ckpt"), "step": str(case_dir / f"ckpt/step_{FIXTURE_STEP}"),
             "manifest": str(case_dir / f"ckpt/step_{FIXTURE_STEP}/manifest.json")}
    names["shard0"] = str(Path(names["step"]) / "shard_tp0_pp0.safetensors")
    names["shard1"] = str(Path(names["step"]) / "shard_tp1_pp0.safetensors")
    if case.get("checkpoint", False):
        shutil.copytree(root / "ckpt", case_dir / "ckpt")
    for op in case.get("ops", []):
        apply(expand(op, names), case_dir)
    argv = [args.tessera, *expand(case["args"], names)]
    if "mpirun" in case:
        argv = [args.mpirun, *MPI_FLAGS, "-np", str(case["mpirun"]), *argv]
    # An address-space limit: an allocation of the declared size fails. AddressSanitizer builds
    # need terabytes of address space for shadow memory, so there the limit is left out and
    # ASan's own report of a huge allocation is what would fail the case.
    if "memory_mb" in case and not args.sanitized:
        argv = ["sh", "-c", f'ulimit -v {case["memory_mb"] * 1024} && exec "$@"', "sh", *argv]
    before = snapshot(case_dir)
    t0 = time.time()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, errors="backslashreplace",
                           timeout=case.get("timeout", 30), cwd=case_dir)
    except subprocess.TimeoutExpired:
        return [f"hung: no exit within {case.get('timeout', 30)} s"], 0.0, ""
    seconds = time.time() - t0
    problems = []
    if r.returncode != case["exit"]:
        problems.append(f"exit code {r.returncode}, expected {case['exit']}")
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    ours = [l for l in lines if l.startswith("tessera")]
    # One line for the whole job, also from several ranks. mpirun adds its own report of the
    # failed job; a single process must print nothing else.
    if len(ours) != 1 or ("mpirun" not in case and len(lines) != 1):
        problems.append(f"stderr is not one error line: {lines}")
    # Bad input ends every rank with its exit code, never through MPI_Abort.
    if "MPI_ABORT" in r.stderr:
        problems.append("the job was aborted (MPI_Abort) instead of every rank exiting")
    want = expand(case.get("error", ""), names)
    pattern = case.get("error_re", "")
    for key, text in names.items():
        pattern = pattern.replace("{" + key + "}", re.escape(text))
    for line in ours or [""]:
        if "error" in case and line != want:
            problems.append(f"error line\n      got:  {line}\n      want: {want}")
        if "error_re" in case and not re.fullmatch(pattern, line):
            problems.append(f"error line\n      got:  {line}\n      want (regex): {pattern}")
    line = ours[0] if ours else ""
    changes = diff(before, snapshot(case_dir))
    if changes:
        problems.append("files changed: " + ", ".join(changes))
    if problems and r.stdout.strip():
        problems.append("stdout: " + r.stdout.strip()[-500:])
    return problems, seconds, line


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--repo", required=True, help="the source tree (configs/, data/)")
    p.add_argument("--table", default=str(HERE / "cases.toml"))
    p.add_argument("--only", default="", help="run only the cases whose name contains this")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--jobs", type=int, default=4, help="cases run at once")
    p.add_argument("--show", action="store_true", help="print every case's error line")
    args = p.parse_args()
    args.tessera = os.path.abspath(args.tessera)
    args.sanitized = b"__asan_init" in Path(args.tessera).read_bytes()
    args.repo = os.path.abspath(args.repo)
    cases = tomllib.loads(Path(args.table).read_text())["case"]
    names = [c["name"] for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        sys.exit(f"FAILED: case names used twice: {sorted(dupes)}")
    cases = [c for c in cases if args.only in c["name"]]
    root = Path(tempfile.mkdtemp(prefix="tessera_cli_errors_"))
    try:
        t0 = time.time()
        make_fixture(args, root)
        fixture_s = time.time() - t0
        failed, kinds = [], {}
        # Most of a case's time is MPI start-up latency, not CPU: run a few at once.
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(lambda c: run_case(c, args, root), cases))
        for case, (problems, seconds, line) in zip(cases, results):
            kind = case["name"].split(".")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
            status = "ok" if not problems else "FAILED"
            print(f"{status:6} {case['name']} ({seconds:.2f} s)")
            if args.show:
                print(f"    line: {line}")
            for problem in problems:
                print(f"    {problem}")
            if problems:
                failed.append(case["name"])
        counts = ", ".join(f"{k} {n}" for k, n in kinds.items())
        print(f"{len(cases) - len(failed)} of {len(cases)} cases passed ({counts}); fixture {fixture_s:.1f} s, "
              f"total {time.time() - t0:.1f} s")
        if failed:
            print("failed: " + " ".join(failed))
            sys.exit(1)
    finally:
        if args.keep:
            print(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
