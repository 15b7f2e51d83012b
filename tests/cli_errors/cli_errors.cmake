# Failure handling at the command line: the bad-input table (cases.toml, run by run_cases.py
# against the real `tessera` binary) and the preemption tests that send SIGTERM to the rank
# processes (as srun does) and to mpirun itself, and the error line of a rank that fails during
# training. Include after mpi_tests.cmake (MPIEXEC_EXECUTABLE).
find_package(Python3 3.11 REQUIRED COMPONENTS Interpreter)  # tomllib

add_test(NAME cli_errors.table
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/run_cases.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --repo ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_errors.table PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)

# SIGTERM to each rank: every rank saves and exits 0, so mpirun exits 0. SIGTERM to mpirun is
# Open MPI's "kill the job": the ranks get SIGTERM 1 s later and SIGKILL 1 s after that; a step
# of the tiny model and its save fit in that second, and mpirun exits 1 (docs/failures.md).
foreach(target ranks mpirun)
  set(expect 0)
  if(target STREQUAL "mpirun")
    set(expect 1)
  endif()
  add_test(NAME signal.sigterm_to_${target}
           COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_signal.py --tessera $<TARGET_FILE:tessera>
                   --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
                   --signal TERM --to ${target} --expect-exit ${expect}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(signal.sigterm_to_${target} PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS mpi)
endforeach()

# An error on one rank during training (world rank 1 stalled, rank 0 times out): the exact
# `tessera: error on rank 0: timeout ...` line, printed once, and the job ends (~10 s).
add_test(NAME fault.cli_rank_error_line
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/check_rank_error.py --tessera $<TARGET_FILE:tessera>
                 --mpirun ${MPIEXEC_EXECUTABLE} --config ${PROJECT_SOURCE_DIR}/configs/tests/gpt_tiny.yaml
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(fault.cli_rank_error_line PROPERTIES RUN_SERIAL TRUE TIMEOUT 180 LABELS mpi)
