#!/usr/bin/env python3
"""Dp-sharded ZeRO checkpoints: a 2-rank ZeRO-3 run saves one file per dp rank (each the element
ranges that rank owns, nothing gathered), and a checkpoint whose files no longer cover a
parameter fails to resume with exactly one line naming the parameter and its missing element
range, exit 1, leaving the checkpoint directory as it was.

Two damages, each on a fresh copy of the saved checkpoint: dp rank 1's file deleted, and dp rank
0's file truncated. The expected line is computed from the manifest: the first parameter (in
the manifest's model order, which is the load order) with a part in the damaged file.

Usage: check_sharded_coverage.py --tessera EXE --mpirun MPIRUN --config GPT_TINY.yaml"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


def run(args, ckpt, steps, extra):
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "2", args.tessera, "train", args.config,
           "--set", "parallel.zero_stage=3", "--set", f"train.max_steps={steps}", "--set", "train.threads=1",
           "--set", f"checkpoint.dir={ckpt}", "--set", "log.interval=100"] + extra
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def snapshot(ckpt):
    """Every file under the checkpoint directory with its size and modification time."""
    out = {}
    for root, _, files in os.walk(ckpt):
        for f in files:
            st = os.stat(os.path.join(root, f))
            out[os.path.relpath(os.path.join(root, f), ckpt)] = (st.st_size, st.st_mtime_ns)
    return out


def expected_line(step_dir, manifest, damaged, reason):
    for t in manifest["tensors"]:
        for p in t["pieces"]:
            if p["file"] == damaged:
                b, e = p["elements"]
                return (f"{step_dir}: parameter '{t['name']}' elements [{b}, {e}) of tp rank {p['tp_rank']} "
                        f"are not covered: {os.path.join(step_dir, damaged)}: {reason}")
    sys.exit(f"FAILED: no tensor has a part in {damaged}")


def check_damage(args, saved, tmp, name, damage):
    ckpt = os.path.join(tmp, name)
    shutil.copytree(saved, ckpt)
    step_dir = os.path.join(ckpt, "step_4")
    manifest = json.load(open(os.path.join(step_dir, "manifest.json")))
    damaged, reason = damage(step_dir, manifest)
    want = expected_line(step_dir, manifest, damaged, reason)
    before = snapshot(ckpt)
    r = run(args, ckpt, 8, ["--set", "checkpoint.resume=auto", "--set", "checkpoint.interval=4"])
    lines = [l for l in r.stderr.splitlines() if "are not covered" in l]
    if r.returncode != 1 or len(lines) != 1 or not lines[0].endswith(want):
        sys.exit(f"FAILED ({name}): exit {r.returncode}, expected one line ending with\n  {want}\n"
                 f"stderr:\n{r.stderr}")
    if snapshot(ckpt) != before:
        sys.exit(f"FAILED ({name}): the failed resume changed {ckpt}")
    print(f"OK ({name}): exit 1, {lines[0]}")


def delete_dp1(step_dir, manifest):
    name = "shard_tp0_pp0_dp1.safetensors"
    os.remove(os.path.join(step_dir, name))
    return name, (f"cannot read: No such file or directory (listed in {os.path.join(step_dir, 'manifest.json')})")


def truncate_dp0(step_dir, manifest):
    name = "shard_tp0_pp0_dp0.safetensors"
    path = os.path.join(step_dir, name)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    return name, f"is {size // 2} bytes, but {os.path.join(step_dir, 'manifest.json')} records {size}"


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "saved")
        r = run(args, saved, 4, ["--set", "checkpoint.interval=4"])
        if r.returncode != 0:
            sys.exit(f"FAILED: the saving run exited {r.returncode}:\n{r.stderr}")
        step_dir = os.path.join(saved, "step_4")
        files = sorted(f for f in os.listdir(step_dir) if f.endswith(".safetensors"))
        if files != ["shard_tp0_pp0_dp0.safetensors", "shard_tp0_pp0_dp1.safetensors"]:
            sys.exit(f"FAILED: expected one shard file per dp rank, found {files}")
        manifest = json.load(open(os.path.join(step_dir, "manifest.json")))
        parted = sum(1 for t in manifest["tensors"] if len(t["pieces"]) == 2)
        if parted == 0 or any("elements" not in p for t in manifest["tensors"] for p in t["pieces"]):
            sys.exit("FAILED: the manifest's pieces are not dp-sharded element ranges")
        print(f"OK: ZeRO-3 dp 2 saved {files}, {parted} of {len(manifest['tensors'])} tensors split between them")
        check_damage(args, saved, tmp, "deleted", delete_dp1)
        check_damage(args, saved, tmp, "truncated", truncate_dp0)


if __name__ == "__main__":
    main()
