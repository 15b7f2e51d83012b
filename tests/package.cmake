# The installed CMake package, end to end: scripts/check_package.sh installs this build to a
# temporary prefix, builds examples/embed_trainer against it with find_package(Tessera) (it
# includes only <tessera/tessera.h>) and runs it on 1 rank, under mpirun -np 2 with dp 2 +
# ZeRO-1 and with pp 2 (from its YAML config), and stopped half-way by its callback under dp 2
# then resumed from the checkpoint under pp 2: the loss must fall, the custom layer must train
# and every other run must reproduce the 1-rank losses. Serial, as every mpirun test on 2 cores.
add_test(NAME package.embed_trainer
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/check_package.sh ${PROJECT_BINARY_DIR}
                 --np 2 --steps 20 --mpirun ${MPIEXEC_EXECUTABLE} --cxx ${CMAKE_CXX_COMPILER}
                 --config $<CONFIG> --cmake ${CMAKE_COMMAND})
# The timeout covers compiling the example against the installed headers on a loaded machine.
set_tests_properties(package.embed_trainer PROPERTIES RUN_SERIAL TRUE TIMEOUT 300 LABELS "mpi;package")
