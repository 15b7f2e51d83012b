#!/usr/bin/env python3
"""Runs the ```console blocks of README.md and docs/*.md, so the commands the docs show work.

    python3 tests/docs/run_console_blocks.py --tessera build/launcher/tessera [--source .] [FILE.md ...]

The convention, for whoever writes docs:

- Only fenced blocks whose info string is `console` run; use ```sh (or anything else) for
  commands that are long, need set-up, or must not run in tests. A console block must run in
  seconds on 2 cores.
- In a console block, a line starting with "$ " is a command (a line ending in "\\" goes on
  to the next one). Every other line is example output: shown to readers, not compared.
- A command that is meant to fail ends with a comment "# exits N"; it must exit with N.
  Every other command must exit with 0.
- The commands of one file run in order, with bash, in a scratch copy of the source tree
  (no build directories, no runs/), made afresh for each file, so a later block may use what
  an earlier one wrote. The tessera under test is first on PATH and is also reachable as
  build/launcher/tessera. XDG_CACHE_HOME points into the scratch copy, so `tessera plan`
  sees no calibration of this machine: pass --cluster configs/clusters/cpu_2core.yaml.
- Small step counts: every `tessera train` command that does not set train.max_steps itself
  gets `--set train.max_steps=N` appended (N = $TESSERA_DOCS_MAX_STEPS, default 4), at the
  end of the command or before its first pipe or redirection.
- mpirun works as written (`mpirun -np 2 tessera train ...`): the runner allows
  oversubscription and running as root through Open MPI's environment variables.

A command that fails stops its file (later commands build on it); the other files still
run. Each failure is reported with the file and line of the command, how it exited, and its
output. Exit status: 0 when every command did what it should, 1 otherwise.
"""
import argparse
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)")
EXITS = re.compile(r"#\s*exits\s+(\d+)\s*$")
TRAIN = re.compile(r"\btessera\s+train\b")
# Where a `tessera train` command ends: the first pipe, list operator or redirection after it.
COMMAND_END = re.compile(r"\s(\||&&|;|\|\||[0-9]?>|<)")


def console_commands(path):
    """[(line number, command)] of the console blocks of one markdown file."""
    commands = []
    fence = None  # the opening fence while inside a block, and whether it is console
    pending, pending_line = None, 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = (m.group(2), m.group(3) == "console")
            continue
        if m and m.group(2).startswith(fence[0][0]) and len(m.group(2)) >= len(fence[0]) and not m.group(3):
            if pending is not None:
                sys.exit(f"{path}:{pending_line}: the command ends in '\\' but its block ends")
            fence = None
            continue
        if not fence[1]:
            continue
        text = line.strip()
        if pending is not None:
            pending += " " + text
        elif text.startswith("$ "):
            pending, pending_line = text[2:], n
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        commands.append((pending_line, pending))
        pending = None
    if fence is not None:
        sys.exit(f"{path}: a ``` block is not closed")
    return commands


def with_step_limit(command, steps):
    """Appends --set train.max_steps=steps to a tessera train command that sets none."""
    m = TRAIN.search(command)
    if not m or "train.max_steps" in command:
        return command
    end = COMMAND_END.search(command, m.end())
    at = end.start() if end else len(command.split("#")[0].rstrip())
    return f"{command[:at]} --set train.max_steps={steps}{command[at:]}"


def scratch_copy(source, into):
    def ignore(directory, names):
        if pathlib.Path(directory).resolve() != source:
            return {n for n in names if n == "__pycache__"}
        return {n for n in names if n.startswith("build") or n in (".git", "runs", "__pycache__")}
    shutil.copytree(source, into, ignore=ignore, symlinks=True)


def run_file(md, source, tessera, steps, timeout):
    """Runs one file's commands; returns (commands run, failure message or None)."""
    commands = console_commands(md)
    if not commands:
        return 0, None
    with tempfile.TemporaryDirectory(prefix="tessera-docs-") as tmp:
        work = pathlib.Path(tmp) / "src"
        scratch_copy(source, work)
        (work / "build" / "launcher").mkdir(parents=True)
        (work / "build" / "launcher" / "tessera").symlink_to(tessera)
        env = dict(os.environ)
        env["PATH"] = f"{tessera.parent}{os.pathsep}{env.get('PATH', '')}"
        env["XDG_CACHE_HOME"] = str(work / ".cache")
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        for k, (line, written) in enumerate(commands):
            command = with_step_limit(written, steps)
            m = EXITS.search(written)
            want = int(m.group(1)) if m else 0
            start = time.monotonic()
            # A session of its own, so a timeout ends the command's children too (mpirun, make).
            proc = subprocess.Popen(["bash", "-c", command], cwd=work, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
            try:
                output, _ = proc.communicate(timeout=timeout)
                status = proc.returncode
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                output, _ = proc.communicate()
                status = "timed out"
            seconds = time.monotonic() - start
            print(f"  {md.name}:{line}: {seconds:5.1f} s  $ {command}")
            if status != want:
                how = status if isinstance(status, str) else f"exited with {status}, expected {want}"
                shown = command if command == written else f"{written}\n  (run as: {command})"
                lines = output.rstrip().splitlines()
                if len(lines) > 60:
                    lines = [f"... ({len(lines) - 60} lines left out)"] + lines[-60:]
                shown_output = "\n".join(lines) or "(none)"
                return k, (f"{md}:{line}: the command\n  $ {shown}\n{how} (after {seconds:.1f} s); its output:\n"
                           f"{shown_output}\n")
    return len(commands), None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", type=pathlib.Path, help="markdown files (default: README.md and docs/*.md)")
    p.add_argument("--tessera", required=True, type=pathlib.Path, help="the built tessera binary")
    p.add_argument("--source", default=pathlib.Path(__file__).resolve().parents[2], type=pathlib.Path,
                   help="the source tree (default: this script's)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds one command may take")
    args = p.parse_args()
    source = args.source.resolve()
    tessera = args.tessera.resolve()
    if not os.access(tessera, os.X_OK):
        sys.exit(f"run_console_blocks: {tessera} is not an executable (build the tessera target first)")
    files = [f.resolve() for f in args.files] or [source / "README.md", *sorted((source / "docs").glob("*.md"))]
    steps = int(os.environ.get("TESSERA_DOCS_MAX_STEPS", "4"))
    failures, total, start = [], 0, time.monotonic()
    for md in files:
        ran, failure = run_file(md, source, tessera, steps, args.timeout)
        total += ran
        if failure:
            failures.append(failure)
    print(f"run_console_blocks: {total} commands from {len(files)} files in {time.monotonic() - start:.1f} s, "
          f"{len(failures)} failed")
    for f in failures:
        print("\nFAILED " + f, end="")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
