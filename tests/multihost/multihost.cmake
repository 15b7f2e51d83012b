# Two hosts on one machine (tests/multihost/check_multihost.py): network namespaces joined by a
# veth pair, a 4-rank tp=2 x dp=2 job across them over OpenMPI's TCP transport; its losses must
# equal one rank's, and cutting the link must end the job within 60 s naming the timeout.
# Needs root and `ip netns`; skipped (exit 77) otherwise.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(_tessera_mh_root ${CMAKE_CURRENT_LIST_DIR}/../..)
if(MPIEXEC_EXECUTABLE)
  set(_tessera_mh_mpirun ${MPIEXEC_EXECUTABLE})
else()
  set(_tessera_mh_mpirun mpirun)
endif()
add_test(NAME multihost.netns.tp2dp2
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_multihost.py
                 --tessera $<TARGET_FILE:tessera> --mpirun ${_tessera_mh_mpirun}
                 --config ${_tessera_mh_root}/configs/tests/gpt_tiny.yaml
         WORKING_DIRECTORY ${_tessera_mh_root})
# Namespaces and veths have fixed names: never two at once, nor next to other mpirun jobs.
set_tests_properties(multihost.netns.tp2dp2 PROPERTIES RUN_SERIAL TRUE TIMEOUT 240 LABELS mpi
                     SKIP_RETURN_CODE 77)

# DiLoCo across the two hosts (bench/bench_diloco_slow_link.py --check): the link shaped by tc
# netem, gpt_tiny for 16 steps; the losses must equal a one-host run and DiLoCo (H = 8) must send
# at most 1/3 of synchronous DP's bytes over the veth. No timings. ~20 s on 2 cores.
add_test(NAME multihost.netns.diloco
         COMMAND ${Python3_EXECUTABLE} ${_tessera_mh_root}/bench/bench_diloco_slow_link.py --check --steps 16
                 --tessera $<TARGET_FILE:tessera> --mpirun ${_tessera_mh_mpirun}
         WORKING_DIRECTORY ${_tessera_mh_root})
set_tests_properties(multihost.netns.diloco PROPERTIES RUN_SERIAL TRUE TIMEOUT 240 LABELS mpi
                     SKIP_RETURN_CODE 77)
