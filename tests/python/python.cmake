# The Python bindings driven by a 2-rank job: tests/python/test_bindings.py runs `tessera train`
# under mpirun for reference losses, then `mpirun -np 2 python3 test_bindings.py --worker`
# with PYTHONPATH at the module (build/python). Skipped (exit 77) when the module was not built
# (no pybind11). Include from tests/CMakeLists.txt after mpi_tests.cmake.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME mpi.python.bindings
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_bindings.py
                 --tessera $<TARGET_FILE:tessera> --mpirun ${MPIEXEC_EXECUTABLE} --np 2
                 --out ${CMAKE_CURRENT_BINARY_DIR}/python_bindings
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(mpi.python.bindings PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE LABELS "mpi;python"
                     SKIP_RETURN_CODE 77
                     ENVIRONMENT "PYTHONPATH=${PROJECT_BINARY_DIR}/python;OMPI_MCA_rmaps_base_oversubscribe=1")

# One layout rule, the same line from `tessera train`, `tessera plan` and the Python Trainer.
add_test(NAME mpi.python.layout_rule_everywhere
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_layout_rule_everywhere.py
                 --tessera $<TARGET_FILE:tessera> --mpirun ${MPIEXEC_EXECUTABLE}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(mpi.python.layout_rule_everywhere PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE LABELS "mpi;python"
                     SKIP_RETURN_CODE 77
                     ENVIRONMENT "PYTHONPATH=${PROJECT_BINARY_DIR}/python;OMPI_MCA_rmaps_base_oversubscribe=1")

# Every config schema field is reachable and writable from Python (single process, < 1 s).
add_test(NAME python.config_fields
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_config_fields.py
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(python.config_fields PROPERTIES TIMEOUT 60 LABELS python SKIP_RETURN_CODE 77
                     ENVIRONMENT "PYTHONPATH=${PROJECT_BINARY_DIR}/python")

# partition: auto is the same decision for `tessera train` and the Python Trainer (three 4-rank
# jobs of one step, ~15 s).
add_test(NAME mpi.python.same_partition
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_same_partition.py
                 --tessera $<TARGET_FILE:tessera> --mpirun ${MPIEXEC_EXECUTABLE}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(mpi.python.same_partition PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE LABELS "mpi;python"
                     SKIP_RETURN_CODE 77
                     ENVIRONMENT "PYTHONPATH=${PROJECT_BINARY_DIR}/python;OMPI_MCA_rmaps_base_oversubscribe=1")
