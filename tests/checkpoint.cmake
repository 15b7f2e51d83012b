# Checkpoint tests that need more than one process (the single-process ones are unit tests,
# tests/unit/test_checkpoint*.cc): save_checkpoint under every (tp, pp, dp) layout of an MPI
# world and load under every other, and the exported file read by the Python safetensors
# package (and, when PyTorch is installed, loaded strictly into the reference nanoGPT model).
# Include after mpi_tests.cmake (it uses tessera_add_mpi_test).
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_executable(tessera_mpi_checkpoint_tests mpi/checkpoint_tests.cc)
target_link_libraries(tessera_mpi_checkpoint_tests PRIVATE tessera_runtime)
target_include_directories(tessera_mpi_checkpoint_tests PRIVATE ${PROJECT_SOURCE_DIR})

foreach(np 2 4)
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
