# Checkpoint tests that need more than one process (the single-process ones are unit tests,
# tests/unit/test_checkpoint*.cc): save_checkpoint under every (tp, pp, dp) layout of an MPI
# world and load under every other, the exported file read by the Python safetensors package
# and loaded strictly into the reference nanoGPT model by PyTorch, and kill -9 during saves.
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

# The exported file read by the Python safetensors package, and loaded strictly into the
# reference nanoGPT model by PyTorch: each reports skipped (77), never passed, when its
# reference package cannot be imported (scripts/install_deps.sh installs both).
add_test(NAME checkpoint.python_export
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint/check_export_safetensors.py
                 ${TESSERA_CHECKPOINT_EXPORT_DIR})
add_test(NAME checkpoint.pytorch_load
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint/check_pytorch_load.py
                 ${TESSERA_CHECKPOINT_EXPORT_DIR} ${PROJECT_SOURCE_DIR}/tests/reference)
set_tests_properties(checkpoint.python_export checkpoint.pytorch_load PROPERTIES FIXTURES_REQUIRED checkpoint_export
                     SKIP_RETURN_CODE 77 LABELS mpi TIMEOUT 120)

# Crash safety: a 2-rank job saving checkpoint after checkpoint is killed (SIGKILL, every
# process of its session) 20 times, each after a save of its own completed; after every kill
# the newest complete checkpoint must load with exactly its own step's values, and the next job
# goes on from it (tests/checkpoint/check_kill_during_save.py). 20 of 20 must pass.
add_test(NAME mpi.checkpoint.kill_during_save
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint/check_kill_during_save.py
                 $<TARGET_FILE:tessera_mpi_checkpoint_tests> ${MPIEXEC_EXECUTABLE}
                 ${CMAKE_CURRENT_BINARY_DIR}/checkpoint_kill 20 ${TESSERA_MPIEXEC_FLAGS})
set_tests_properties(mpi.checkpoint.kill_during_save PROPERTIES RUN_SERIAL TRUE LABELS mpi TIMEOUT 300
                     ENVIRONMENT "OMPI_MCA_rmaps_base_oversubscribe=1")
