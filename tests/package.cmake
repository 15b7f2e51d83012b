# The installed CMake package, end to end: scripts/check_package.sh installs this build to a
# temporary prefix, builds examples/embed_trainer against it with find_package(Tessera) and
# runs it under mpirun -np 2; the loss must fall. Serial, as every mpirun test on 2 cores.
add_test(NAME package.embed_trainer
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/check_package.sh ${PROJECT_BINARY_DIR}
                 --np 2 --steps 20 --mpirun ${MPIEXEC_EXECUTABLE} --cxx ${CMAKE_CXX_COMPILER}
                 --config $<CONFIG> --cmake ${CMAKE_COMMAND})
set_tests_properties(package.embed_trainer PROPERTIES RUN_SERIAL TRUE TIMEOUT 90 LABELS "mpi;package")
