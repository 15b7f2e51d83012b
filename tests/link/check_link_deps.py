"""Checks which shared libraries a binary links, with ldd: --require NAME must appear, --forbid
NAME must not (a substring of the library's file name, e.g. libmpi, libonnx).

    check_link_deps.py --binary FILE [--require NAME]... [--forbid NAME]...

The binaries are linked with --no-as-needed (tests/link/link_deps.cmake), so ldd shows every
library on their link line, not only the ones whose symbols happen to be used.
"""
import argparse
import subprocess
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--require", action="append", default=[])
    p.add_argument("--forbid", action="append", default=[])
    args = p.parse_args()
    out = subprocess.run(["ldd", args.binary], capture_output=True, text=True, check=True).stdout
    libs = [line.split()[0] for line in out.splitlines() if line.strip()]
    missing = [n for n in args.require if not any(n in lib for lib in libs)]
    present = [lib for lib in libs for n in args.forbid if n in lib]
    print(f"{args.binary}: {len(libs)} libraries")
    if missing:
        sys.exit(f"FAIL: not linked: {', '.join(missing)}\n{out}")
    if present:
        sys.exit(f"FAIL: linked, and must not be: {', '.join(present)}\n{out}")
    print("ok")


if __name__ == "__main__":
    main()
