# Checkpoint tests that need more than one process (the single-process ones are unit tests,
# tests/unit/test_checkpoint*.cc): save_checkpoint under every (tp, pp, dp) layout of an MPI
# world and load under every other, and the exported file read by the Python safetensors
# package (and, when PyTorch is installed, loaded strictly into the reference nanoGPT model).
# Include after mpi_tests.cmake (it uses tessera_add_mpi_test).
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_executable(tessera_mpi_checkpoint_tests mpi/checkpoint_tests.cc)
target_link_libraries(tessera_mpi_checkpoint_tests PRIVATE tessera_runtime)
target_include_directories(tessera_mpi_checkpoint_tests PRIVATE ${PROJECT_SOURCE_DIR})

foreach(np 2 4 8)
  tessera_add_mpi_test(mpi.checkpoint.np${np} ${np} tessera_mpi_checkpoint_tests layouts
                       ${CMAKE_CURRENT_BINARY_DIR}/checkpoint_np${np})
endforeach()

set(TESSERA_CHECKPOINT_EXPORT_DIR ${CMAKE_CURRENT_BINARY_DIR}/checkpoint_export)
tessera_add_mpi_test(mpi.checkpoint.export 2 tessera_mpi_checkpoint_tests export ${TESSERA_CHECKPOINT_EXPORT_DIR})
set_tests_properties(mpi.checkpoint.export PROPERTIES FIXTURES_SETUP checkpoint_export)

file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/check_checkpoint_export.py [=[
"""Reads the file `tessera export --safetensors` writes with the Python safetensors package:
names, dtypes, unpadded shapes, values (against expected.safetensors) and metadata; then,
when PyTorch is installed, loads it strictly into the reference nanoGPT-shaped model.
Usage: check_checkpoint_export.py EXPORT_DIR tests/reference. Exit 77 = skipped."""
import sys
from pathlib import Path

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
except ImportError as error:
    print(f"skipped: {error}")
    sys.exit(77)

out = Path(sys.argv[1])
got = load_file(out / "model.safetensors")
want = load_file(out / "expected.safetensors")
assert sorted(got) == sorted(want), f"names {sorted(got)} != {sorted(want)}"
for name, value in want.items():
    assert got[name].dtype == np.float32, f"{name}: dtype {got[name].dtype}"
    assert got[name].shape == value.shape, f"{name}: shape {got[name].shape} != {value.shape}"
    assert np.array_equal(got[name], value), f"{name}: values differ"
assert got["wte.weight"].shape == (65, 32) and got["lm_head.weight"].shape == (65, 32)
assert got["h.0.attn.c_attn.weight"].shape == (96, 32)
with safe_open(out / "model.safetensors", "np") as f:
    meta = f.metadata()
assert meta["format"] == "pt" and meta["step"] == "11", meta
print(f"safetensors: {len(got)} tensors match")

try:
    import torch
    from safetensors.torch import load_file as load_torch
    sys.path.insert(0, sys.argv[2])
    from nanogpt_model import TinyGPT
except ImportError as error:
    print(f"PyTorch load skipped: {error}")
    sys.exit(0)
model = TinyGPT(vocab=65, seq=16, hidden=32, heads=4, ffn=64, layers=2)
model.load_state_dict(load_torch(str(out / "model.safetensors")), strict=True)
logits = model(torch.arange(16).reshape(1, 16) % 65)
assert logits.shape == (1, 16, 65) and torch.isfinite(logits).all()
print("PyTorch: loaded strictly into TinyGPT")
]=])
add_test(NAME checkpoint.python_export
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_BINARY_DIR}/check_checkpoint_export.py
                 ${TESSERA_CHECKPOINT_EXPORT_DIR} ${PROJECT_SOURCE_DIR}/tests/reference)
set_tests_properties(checkpoint.python_export PROPERTIES FIXTURES_REQUIRED checkpoint_export
                     SKIP_RETURN_CODE 77 LABELS mpi TIMEOUT 120)

# Crash safety: a 2-rank job saving checkpoint after checkpoint is killed (SIGKILL, every
# process of its session) at 20 random instants; after each kill the newest complete
# checkpoint must load with exactly its own step's values, and the next job goes on from it.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/kill_during_save.py [=[
"""Usage: kill_during_save.py EXE MPIRUN DIR ROUNDS [mpirun flags...]"""
import os, random, shutil, signal, subprocess, sys, time

exe, mpirun, out, rounds, flags = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
shutil.rmtree(out, ignore_errors=True)
rng = random.Random(20240520)


def kill_session(sid):
    # mpirun puts each rank in its own process group, so kill by session instead.
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


verified, steps = 0, []
for i in range(rounds):
    job = subprocess.Popen([mpirun, "-np", "2", *flags, exe, "churn", out], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(rng.uniform(0.3, 1.5))
    kill_session(job.pid)
    job.wait()
    time.sleep(0.2)
    kill_session(job.pid)  # anything forked in between
    check = subprocess.run([exe, "verify", out], capture_output=True, text=True, timeout=120)
    lines = check.stdout.strip().splitlines() or ["(no output)"]
    last = lines[0]
    print(f"kill {i + 1}: " + "\n    ".join(l for l in lines if "cases passed" not in l), flush=True)
    if check.returncode != 0:
        print(check.stdout, check.stderr)
        sys.exit(1)
    if last.startswith("verified"):
        verified += 1
        steps.append(last.split("step_")[-1].split()[0])
print(f"{verified} of {rounds} kills left a checkpoint that loads exactly (newest steps: {', '.join(steps)})")
# A kill before the first save completes leaves nothing; most must find one.
sys.exit(0 if verified >= rounds // 2 else 1)
]=])
add_test(NAME mpi.checkpoint.kill_during_save
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_BINARY_DIR}/kill_during_save.py
                 $<TARGET_FILE:tessera_mpi_checkpoint_tests> ${MPIEXEC_EXECUTABLE}
                 ${CMAKE_CURRENT_BINARY_DIR}/checkpoint_kill 20 ${TESSERA_MPIEXEC_FLAGS})
set_tests_properties(mpi.checkpoint.kill_during_save PROPERTIES RUN_SERIAL TRUE LABELS mpi TIMEOUT 300
                     ENVIRONMENT "OMPI_MCA_rmaps_base_oversubscribe=1")
