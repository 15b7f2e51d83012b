# Runs an MPI job that must fail and checks how: a non-zero exit, output matching EXPECT,
# and an end within MAX_SECONDS (a hang fails the test rather than blocking CTest).
# cmake -DMPIEXEC=... -DMPIEXEC_ARGS="-np 3 --oversubscribe ..." -DEXE=... -DMODE=...
#       -DEXPECT=<regex> -DMAX_SECONDS=<s> -P expect_failure.cmake
separate_arguments(mpiexec_args UNIX_COMMAND "${MPIEXEC_ARGS}")
string(TIMESTAMP started "%s")
execute_process(COMMAND ${MPIEXEC} ${mpiexec_args} ${EXE} ${MODE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${MAX_SECONDS})
string(TIMESTAMP ended "%s")
math(EXPR elapsed "${ended} - ${started}")
set(output "${out}${err}")
message("exit: ${rc}, about ${elapsed} s\n${output}")
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "the job did not end within ${MAX_SECONDS} s: ${rc}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "the job exited 0, expected a failure")
endif()
if(NOT output MATCHES "${EXPECT}")
  message(FATAL_ERROR "the output does not match: ${EXPECT}")
endif()
