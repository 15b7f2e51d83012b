# Multi-rank tests: programs under tests/mpi run by mpirun as CTest tests (names start with
# "mpi." so `ctest -R mpi` selects them). Oversubscribed on purpose (8 ranks on 2 cores in
# CI) and allowed as root; unbound so ranks share whatever cores the machine has; run one at
# a time (RUN_SERIAL), since two oversubscribed jobs side by side would starve each other.
set(TESSERA_MPIEXEC_FLAGS --oversubscribe --allow-run-as-root --bind-to none)

# tessera_add_mpi_test(name np exe args...): runs `mpirun -np <np> <exe> <args>`.
function(tessera_add_mpi_test name np exe)
  add_test(NAME ${name}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${TESSERA_MPIEXEC_FLAGS}
                   ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${exe}> ${MPIEXEC_POSTFLAGS} ${ARGN})
  set_tests_properties(${name} PROPERTIES TIMEOUT 120 RUN_SERIAL TRUE LABELS mpi
                       ENVIRONMENT "OMPI_MCA_rmaps_base_oversubscribe=1")
endfunction()

# tessera_add_mpi_failure_test(name np exe mode regex max_seconds): the job must exit
# non-zero within max_seconds with output matching regex (tests/mpi/expect_failure.cmake).
function(tessera_add_mpi_failure_test name np exe mode regex max_seconds)
  list(JOIN TESSERA_MPIEXEC_FLAGS " " flags)
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} -DMPIEXEC=${MPIEXEC_EXECUTABLE}
                   "-DMPIEXEC_ARGS=${MPIEXEC_NUMPROC_FLAG} ${np} ${flags}" -DEXE=$<TARGET_FILE:${exe}>
                   -DMODE=${mode} "-DEXPECT=${regex}" -DMAX_SECONDS=${max_seconds}
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/mpi/expect_failure.cmake)
  math(EXPR ctest_timeout "${max_seconds} + 30")
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ctest_timeout} RUN_SERIAL TRUE LABELS mpi
                       ENVIRONMENT "OMPI_MCA_rmaps_base_oversubscribe=1")
endfunction()

add_executable(tessera_mpi_comm_tests mpi/comm_tests_main.cc mpi/test_comm_ops.cc mpi/test_grid_groups.cc
               mpi/test_agreement.cc)
target_link_libraries(tessera_mpi_comm_tests PRIVATE tessera_runtime)

add_executable(tessera_mpi_fault_tests mpi/fault_tests.cc)
target_link_libraries(tessera_mpi_fault_tests PRIVATE tessera_runtime)

foreach(np 1 2 3 4)
  tessera_add_mpi_test(mpi.comm.np${np} ${np} tessera_mpi_comm_tests comm)
endforeach()
tessera_add_mpi_test(mpi.grid.np8 8 tessera_mpi_comm_tests grid)

# A stalled or dead rank: the others end the job within the 1 s timeout (the budget covers
# mpirun start-up on a loaded 2-core machine), naming the group, step and missing peer. (On
# a badly loaded machine a healthy rank may also be late by > 1 s; it is then named too.)
tessera_add_mpi_failure_test(mpi.fault.stall_collective 3 tessera_mpi_fault_tests stall_collective
  "timeout after 1.0 s in all_reduce on group 'world' .rank [02] of 3, world rank [02]. at step 7: waiting for peer ranks? (0, )?1(, 2)? .world ranks? (0, )?1(, 2)?., which ha(s|ve) not entered this all_reduce"
  20)
tessera_add_mpi_failure_test(mpi.fault.stall_group 4 tessera_mpi_fault_tests stall_group
  "timeout after 1.0 s in all_reduce on group 'dp' .rank 0 of 2, world rank 1. at step 7: waiting for peer rank 1 .world rank 3..*this rank's last calls, oldest first: .*dp all_reduce #1 .step 7, waiting."
  20)
tessera_add_mpi_failure_test(mpi.fault.stall_recv 2 tessera_mpi_fault_tests stall_recv
  "timeout after 1.0 s in recv on group 'world' .rank 0 of 2, world rank 0. at step 7: waiting for peer rank 1 .world rank 1. to send tag 5"
  20)
# The dead rank's exit makes mpirun end the job (or the 5 s timeout fires first).
tessera_add_mpi_failure_test(mpi.fault.kill 3 tessera_mpi_fault_tests kill
  "exited on signal|non-zero status|timeout after 5.0 s in all_reduce" 25)
